//! `sessionfold-projector demo`: prints the demo dataset of `dev` mode as
//! NDJSON, to feed `replay` or `publish` against real servers.

use chrono::Utc;

use crate::demo::demo_events;

pub fn execute() -> anyhow::Result<()> {
    use std::io::Write;

    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for event in demo_events(Utc::now()) {
        serde_json::to_writer(&mut out, &event)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}
