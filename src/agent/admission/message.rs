//! What a client may say to an interactive agent: text, or blocks of text and images, checked
//! before anything is written to the CLI.

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::agent::Error;

/// The body of `POST /agent/{id}/messages`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageRequest {
    /// A string, or 1 to 100 blocks: `{"type":"text","text":...}` or
    /// `{"type":"image","source":{"type":"base64","media_type":"image/png","data":...}}`
    /// (png, jpeg, gif or webp, at most PROXY_MAX_IMAGE_BYTES decoded).
    #[schema(value_type = MessageContent)]
    pub content: Value,
}

crate::literal::literal!(Base64Type, "base64");

/// A string, or 1 to 100 blocks of text and images: a user message, checked. It is written to
/// the CLI as it serializes, which is the Messages API's shape the document describes.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum MessageContent {
    Text(String),
    Blocks(Vec<Block>),
}

/// One block of a message: text, or a base64 image.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = MessageBlock)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Block {
    Text { text: String },
    Image { source: ImageSource },
}

/// A base64 image, its data checked to decode within the limit.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ImageSource {
    /// The proxy fetches nothing.
    #[serde(rename = "type")]
    #[schema(inline)]
    pub kind: Base64Type,
    /// image/png, image/jpeg, image/gif or image/webp.
    pub media_type: &'static str,
    pub data: String,
}

/// The image types the Messages API takes.
const IMAGE_TYPES: [&str; 4] = ["image/png", "image/jpeg", "image/gif", "image/webp"];
/// Blocks one message may hold.
const MAX_BLOCKS: usize = 100;

/// Checks that base64 `data` starts as an image of `media_type` does, by the magic bytes of
/// the types the Messages API takes (PNG, JPEG, GIF, WebP): the API would refuse other bytes,
/// but only once the CLI runs, as the CLI's failure. Err says why not. Only the first bytes
/// are decoded.
pub fn check_image_magic(media_type: &str, data: &str) -> Result<(), String> {
    // 16 base64 characters are 12 bytes, enough for each type's magic (WebP's is the longest).
    let head = data.get(..16).unwrap_or(data);
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(head)
        .map_err(|err| format!("an image's data is not base64: {err}"))?;
    let is_type = match media_type {
        "image/png" => bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "image/jpeg" => bytes.starts_with(b"\xff\xd8\xff"),
        "image/gif" => bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a"),
        "image/webp" => bytes.starts_with(b"RIFF") && bytes.get(8..12) == Some(b"WEBP"),
        _ => {
            return Err(format!(
                "an image's media_type must be one of {}",
                IMAGE_TYPES.join(", ")
            ));
        }
    };
    match is_type {
        true => Ok(()),
        false => Err(format!(
            "the data does not start as an {media_type} image does"
        )),
    }
}

impl MessageContent {
    /// Checks `content`: a non-empty string, or 1 to 100 blocks, each
    /// `{"type":"text","text":...}` or
    /// `{"type":"image","source":{"type":"base64","media_type":...,"data":...}}` with an image
    /// of at most `max_image_bytes` once decoded.
    pub fn check(content: Value, max_image_bytes: usize) -> Result<Self, Error> {
        let invalid = |reason: String| Error::invalid("content", reason);
        match content {
            Value::String(text) if text.trim().is_empty() => {
                Err(invalid("must not be empty".into()))
            }
            Value::String(text) => Ok(MessageContent::Text(text)),
            Value::Array(blocks) if blocks.is_empty() || blocks.len() > MAX_BLOCKS => {
                Err(invalid(format!("must hold 1 to {MAX_BLOCKS} blocks")))
            }
            Value::Array(blocks) => blocks
                .into_iter()
                .enumerate()
                .map(|(n, block)| {
                    Block::check(block, max_image_bytes)
                        .map_err(|reason| invalid(format!("block {n}: {reason}")))
                })
                .collect::<Result<_, _>>()
                .map(MessageContent::Blocks),
            _ => Err(invalid(
                "must be a string, or a list of text and image blocks".into(),
            )),
        }
    }

    /// As the CLI's user line holds it.
    pub fn to_cli(&self) -> Value {
        serde_json::to_value(self).expect("a message serializes")
    }
}

impl Block {
    fn check(block: Value, max_image_bytes: usize) -> Result<Self, String> {
        let Value::Object(mut block) = block else {
            return Err("must be an object".into());
        };
        let kind = block.remove("type");
        let only = |block: &serde_json::Map<String, Value>, allowed: &[&str]| match block
            .keys()
            .find(|k| !allowed.contains(&k.as_str()))
        {
            Some(unknown) => Err(format!("unknown field {unknown}")),
            None => Ok(()),
        };
        match kind.as_ref().and_then(Value::as_str) {
            Some("text") => {
                only(&block, &["text"])?;
                match block.remove("text") {
                    Some(Value::String(text)) if !text.is_empty() => Ok(Block::Text { text }),
                    _ => Err("a text block needs a non-empty text".into()),
                }
            }
            Some("image") => {
                only(&block, &["source"])?;
                let Some(Value::Object(mut source)) = block.remove("source") else {
                    return Err("an image block needs a source object".into());
                };
                only(&source, &["type", "media_type", "data"])?;
                if source.get("type").and_then(Value::as_str) != Some("base64") {
                    return Err("an image's source type must be base64".into());
                }
                let media_type = source
                    .get("media_type")
                    .and_then(Value::as_str)
                    .and_then(|t| IMAGE_TYPES.iter().find(|known| **known == t))
                    .ok_or_else(|| {
                        format!(
                            "an image's media_type must be one of {}",
                            IMAGE_TYPES.join(", ")
                        )
                    })?;
                let Some(Value::String(data)) = source.remove("data") else {
                    return Err("an image needs its data, in base64".into());
                };
                // Checked without decoding the whole image: its size first, then the alphabet.
                let decoded_len = data.len() / 4 * 3;
                if decoded_len > max_image_bytes + 2 {
                    return Err(format!(
                        "an image may hold at most {max_image_bytes} bytes (PROXY_MAX_IMAGE_BYTES)"
                    ));
                }
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(&data)
                    .map_err(|err| format!("an image's data is not base64: {err}"))?;
                if bytes.len() > max_image_bytes {
                    return Err(format!(
                        "an image may hold at most {max_image_bytes} bytes (PROXY_MAX_IMAGE_BYTES)"
                    ));
                }
                Ok(Block::Image {
                    source: ImageSource {
                        kind: Base64Type,
                        media_type,
                        data,
                    },
                })
            }
            _ => Err("type must be text or image".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(content: Value) -> Result<MessageContent, Error> {
        MessageContent::check(content, 16)
    }

    #[test]
    fn text_and_blocks_pass_and_reach_the_cli_as_the_api_takes_them() {
        assert_eq!(check(json!("hi")).unwrap().to_cli(), json!("hi"));
        let png = base64::engine::general_purpose::STANDARD.encode(b"\x89PNG....");
        let blocks = json!([
            {"type": "text", "text": "what is this?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
        ]);
        assert_eq!(check(blocks.clone()).unwrap().to_cli(), blocks);
    }

    #[test]
    fn an_image_is_the_type_its_first_bytes_say() {
        let encode = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
        let png = encode(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR");
        let jpeg = encode(b"\xff\xd8\xff\xe0\0\x10JFIF\0");
        let gif87 = encode(b"GIF87a\x01\0\x01\0");
        let gif89 = encode(b"GIF89a\x01\0\x01\0");
        let webp = encode(b"RIFF\x24\0\0\0WEBPVP8 ");
        let typed = [
            ("image/png", &png),
            ("image/jpeg", &jpeg),
            ("image/gif", &gif87),
            ("image/gif", &gif89),
            ("image/webp", &webp),
        ];
        for (media_type, data) in typed {
            assert_eq!(check_image_magic(media_type, data), Ok(()), "{media_type}");
            for (other, _) in typed.iter().filter(|(other, _)| *other != media_type) {
                assert!(
                    check_image_magic(other, data).is_err(),
                    "{media_type} as {other}"
                );
            }
        }
        // Too short for its magic, text, a RIFF that is not WebP, an unknown type, not base64.
        for (media_type, data) in [
            ("image/png", encode(b"\x89PNG")),
            ("image/png", encode(b"just some text")),
            ("image/webp", encode(b"RIFF\x24\0\0\0WAVEfmt ")),
            ("image/bmp", encode(b"BM\0\0\0\0")),
            ("image/png", "not base64!".to_owned()),
        ] {
            assert!(check_image_magic(media_type, &data).is_err(), "{data}");
        }
    }

    #[test]
    fn bad_content_is_refused() {
        let big = base64::engine::general_purpose::STANDARD.encode([0u8; 17]);
        for bad in [
            json!(""),
            json!(5),
            json!([]),
            json!([{"type": "text"}]),
            json!([{"type": "text", "text": "x", "cache_control": {}}]),
            json!([{"type": "tool_result", "content": "x"}]),
            json!([{"type": "image", "source": {"type": "url", "media_type": "image/png", "data": "AA=="}}]),
            json!([{"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": "AA=="}}]),
            json!([{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "not base64!"}}]),
            json!([{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": big}}]),
        ] {
            assert!(
                matches!(
                    check(bad.clone()),
                    Err(Error::InvalidField {
                        field: "content",
                        ..
                    })
                ),
                "{bad}"
            );
        }
    }
}
