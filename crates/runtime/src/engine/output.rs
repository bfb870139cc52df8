//! A compose service's own output for `hooks logs --service`: read from the engine by the
//! project's labels, with the content of the service's secret files blanked, as the last
//! successful `up` recorded them (a server has no compose files to read them from).

use std::path::Path;

use bollard::query_parameters::LogsOptionsBuilder;
use futures_util::StreamExt;
use futures_util::stream::select_all;

use super::{Engine, EngineError, ps, spec, state};

/// Passes each output line of `service`'s containers in `project` to `line` (container name,
/// text): the last `tail` lines (all without it), then, with `follow`, what they print until
/// every one has stopped. Returns how many containers the service has; 0 prints nothing.
pub fn service_output(
    engine: &Engine,
    state_dir: &Path,
    project: &str,
    service: &str,
    tail: Option<usize>,
    follow: bool,
    line: &mut dyn FnMut(&str, &str),
) -> Result<usize, EngineError> {
    let mut secrets = Vec::new();
    let mut recorded = state::recorded_specs(state_dir, project);
    recorded.retain(|s| s.name == service);
    for spec in &mut recorded {
        // A secret file removed since the last `up` has nothing left to leak; the others are
        // still read, one by one, so one missing file does not unblank the rest.
        spec.secrets.retain(|s| s.file.is_file());
    }
    if let Ok(contents) = spec::read_secrets(&mut recorded) {
        secrets.extend(contents.into_iter().map(|s| s.trim().to_owned()));
    }
    secrets.retain(|s| s.len() >= 4);
    let containers: Vec<_> = ps(engine, project)?
        .into_iter()
        .filter(|row| row.service == service && !row.name.ends_with(".next"))
        .collect();
    let tail = tail.map_or_else(|| "all".to_owned(), |n| n.to_string());
    let streams = containers.iter().map(|row| {
        let options = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .follow(follow)
            .tail(&tail)
            .build();
        let name = row.name.clone();
        engine
            .docker()
            .logs(&row.id, Some(options))
            .map(move |chunk| (name.clone(), chunk))
    });
    let mut merged = select_all(streams);
    engine.block_on(async {
        while let Some((name, chunk)) = merged.next().await {
            let Ok(chunk) = chunk else { break };
            let text = String::from_utf8_lossy(&chunk.into_bytes()).into_owned();
            for text in text.lines() {
                line(&name, &hooks_secrets::redact::line(text, &secrets));
            }
        }
    });
    Ok(containers.len())
}
