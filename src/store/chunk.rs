//! A run of an agent's events in one blob: for each event, its id (8 bytes, little-endian),
//! its name (1 byte: 0 for none, else its place in `EVENT_NAMES` plus one), its payload's
//! length (4 bytes, little-endian) and the payload.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::agent::{EVENT_NAMES, Event};

const HEADER: usize = 8 + 1 + 4;

pub fn encode(events: &[Event]) -> Vec<u8> {
    let size = events.iter().map(|e| HEADER + e.data.len()).sum();
    let mut blob = Vec::with_capacity(size);
    for event in events {
        blob.put_u64_le(event.id);
        let name = event
            .name
            .and_then(|name| EVENT_NAMES.iter().position(|known| *known == name))
            .map_or(0, |at| at as u8 + 1);
        blob.put_u8(name);
        blob.put_u32_le(u32::try_from(event.data.len()).expect("a line is under 4 GiB"));
        blob.put_slice(&event.data);
    }
    blob
}

/// The events of a blob; None for one that is cut short or names an unknown event.
pub fn decode(blob: &[u8]) -> Option<Vec<Event>> {
    let mut blob = BytesMut::from(blob).freeze();
    let mut events = Vec::new();
    while blob.has_remaining() {
        if blob.remaining() < HEADER {
            return None;
        }
        let id = blob.get_u64_le();
        let name = match blob.get_u8() {
            0 => None,
            n => Some(*EVENT_NAMES.get(usize::from(n) - 1)?),
        };
        let len = blob.get_u32_le() as usize;
        if blob.remaining() < len {
            return None;
        }
        let data: Bytes = blob.split_to(len);
        events.push(Event { id, name, data });
    }
    Some(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_come_back_as_they_went() {
        let events = vec![
            Event {
                id: 1,
                name: Some("agent"),
                data: Bytes::from_static(b"{\"type\":\"agent\"}"),
            },
            Event {
                id: 2,
                name: None,
                data: Bytes::from_static(b"{\"type\":\"system\"}"),
            },
            Event {
                id: 9,
                name: Some("permission_cancelled"),
                data: Bytes::new(),
            },
        ];
        assert_eq!(decode(&encode(&events)).unwrap(), events);
        let blob = encode(&events);
        assert!(decode(&blob[..blob.len() - 1]).is_none(), "cut short");
    }
}
