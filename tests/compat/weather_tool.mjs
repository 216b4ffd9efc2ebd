// The one client tool the tool tests offer (tools.test.mjs, responses_tools.test.mjs): its
// parameters, the prompt that has the stand-in call it (CALL[ names the tool and its input),
// and what running it says.
export const parameters = {
  type: "object",
  properties: { city: { type: "string" } },
  required: ["city"],
};
export const prompt = (marker) => `What is the weather in Paris? [${marker}] CALL[get_weather {"city": "Paris"}]`;
export const weather = (city) => `sunny in ${city}, 22 C`;
