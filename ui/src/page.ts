// What every page gets from the frame around it.

export interface Frame {
  /** The key is missing or was refused: ask for one, then show the page again. */
  askForKey(): void;
  /** A line for the person: what an action did or why it failed. */
  notify(text: string, kind?: "info" | "error"): void;
  /** A call failed: a key is asked for when it was the key, else the person is told `what`
   * failed and why. */
  failed(what: string, error: unknown): void;
}

/** A shown page: `stop` ends its polling and streams when another one replaces it. */
export interface Page {
  stop(): void;
}

/** Something asked again and again: `now` asks at once (unless it is asking already), `stop`
 * for good. */
export interface Poller {
  now(): void;
  stop(): void;
}

/** Calls `tick` now and then every `ms`, never two at once, until stopped. */
export function every(ms: number, tick: () => Promise<void>): Poller {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  let busy = false;
  const run = async () => {
    clearTimeout(timer);
    busy = true;
    try {
      await tick();
    } finally {
      busy = false;
      if (!stopped) timer = setTimeout(run, ms);
    }
  };
  void run();
  return {
    now() {
      if (!busy && !stopped) void run();
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
