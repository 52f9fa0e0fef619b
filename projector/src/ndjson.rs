//! Reading CloudEvents from NDJSON (one JSON event per line) or a JSON array.

use std::io::BufRead;

use sessionfold_common::event::{DecodeError, Decoded, Decoder};

use crate::source::{RawRecord, Record};

/// Decodes each non-blank line of `reader`. A malformed line becomes a failed
/// record naming its line number; reading goes on with the next line.
pub fn read_records(reader: impl BufRead, name: &str, decoder: &Decoder) -> std::io::Result<Vec<Record>> {
    let mut records = Vec::new();
    for (index, line) in reader.split(b'\n').enumerate() {
        let line = line?;
        let line = line.strip_suffix(b"\r").unwrap_or(&line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        records.push(Record {
            origin: format!("{name}:{}", index + 1),
            decoded: decoder.decode_structured(line),
            raw: RawRecord {
                payload: line.to_vec(),
                ..RawRecord::default()
            },
        });
    }
    Ok(records)
}

/// Decodes a request body that is either a JSON array of events or NDJSON.
/// The array form is detected by its first non-blank byte.
pub fn read_body(body: &[u8], decoder: &Decoder) -> Vec<Record> {
    let first = body.iter().find(|byte| !byte.is_ascii_whitespace());
    if first != Some(&b'[') {
        return read_records(body, "body", decoder).expect("reading from memory cannot fail");
    }
    match serde_json::from_slice::<Vec<serde_json::Value>>(body) {
        Ok(values) => values
            .into_iter()
            .enumerate()
            .map(|(index, value)| Record {
                origin: format!("body[{index}]"),
                raw: RawRecord {
                    payload: serde_json::to_vec(&value).unwrap_or_default(),
                    ..RawRecord::default()
                },
                decoded: decoder.decode_value(value),
            })
            .collect(),
        Err(err) => vec![Record {
            origin: "body".to_owned(),
            decoded: Err(DecodeError {
                event_id: None,
                user_id: None,
                problem: sessionfold_common::event::DecodeProblem::NotJson(err.to_string()),
            }),
            raw: RawRecord {
                payload: body.to_vec(),
                ..RawRecord::default()
            },
        }],
    }
}

/// Splits records into decoded events, unknown-type skips and failures.
pub fn partition(records: Vec<Record>) -> Partitioned {
    let mut partitioned = Partitioned::default();
    for record in records {
        match record.decoded {
            Ok(Decoded::Event(event)) => partitioned.events.push(event),
            Ok(Decoded::UnknownType { event_type, .. }) => {
                partitioned.skipped.push((record.origin, event_type))
            }
            Err(error) => partitioned.rejected.push((record.origin, error)),
        }
    }
    partitioned
}

#[derive(Debug, Default)]
pub struct Partitioned {
    pub events: Vec<sessionfold_common::event::Event>,
    /// (origin, event type) of events skipped for an unknown type.
    pub skipped: Vec<(String, String)>,
    /// (origin, reason) of events that failed to decode.
    pub rejected: Vec<(String, DecodeError)>,
}
