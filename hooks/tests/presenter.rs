//! What `hooks deploy` and `hooks rollback` show, through the real binary: short lines and a
//! spinner under a pseudo-terminal, colour that follows `--color` and `NO_COLOR`, plain lines
//! through a pipe, JSON lines with `--json`, and an example in every command's `--help`.

use crate::common;

use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Env, hooks_bin, wait_until};
use portable_pty::{CommandBuilder, PtySize, native_pty_system};

/// An SGR escape (colour, bold, dim): `ESC [ … m`.
fn has_sgr(text: &str) -> bool {
    regex::Regex::new(r"\x1b\[[0-9;]*m").unwrap().is_match(text)
}

/// `hooks ARGS` under a pseudo-terminal of 200 columns; `on_output` is called with everything
/// printed so far until it returns true (then never again). Returns the exit code and all
/// output.
fn under_pty(
    env: &Env,
    args: &[&str],
    vars: &[(&str, &str)],
    mut on_output: impl FnMut(&str) -> bool,
) -> (u32, String) {
    let pair = native_pty_system()
        .openpty(PtySize {
            rows: 50,
            cols: 200,
            pixel_width: 0,
            pixel_height: 0,
        })
        .unwrap();
    let mut command = CommandBuilder::new(hooks_bin());
    command.args(args);
    command.cwd(env.dir.path());
    command.env("HOOKS_ROOT", env.root());
    command.env("TERM", "xterm-256color");
    command.env_remove("NO_COLOR");
    for (name, value) in vars {
        command.env(name, value);
    }
    let mut child = pair.slave.spawn_command(command).unwrap();
    drop(pair.slave);
    let output = Arc::new(Mutex::new(Vec::new()));
    let mut reader = pair.master.try_clone_reader().unwrap();
    let sink = output.clone();
    let reading = std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        // EIO once the child has exited and the terminal closed: the end.
        while let Ok(n) = reader.read(&mut buffer) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buffer[..n]);
        }
    });
    let text = || String::from_utf8_lossy(&output.lock().unwrap()).into_owned();
    wait_until(
        Duration::from_secs(120),
        "the expected terminal output",
        || on_output(&text()) || child.try_wait().unwrap().is_some(),
    );
    let status = child.wait().unwrap();
    drop(pair.master);
    reading.join().unwrap();
    (status.exit_code(), text())
}

/// A bundle whose ApplicationStart script runs until the file `gate` exists, after a line of
/// output; every other event runs `hooks run-hook`, which has nothing to do under deploy.
fn slow_bundle(env: &Env, name: &str, gate: &Path) -> std::path::PathBuf {
    let mut bundle = env.bundle(name);
    for event in ["BeforeInstall", "AfterInstall", "ValidateService"] {
        bundle = bundle.script(
            event,
            &format!("{}-run-hook.sh", event.to_lowercase()),
            "exec \"$HOOKS_BIN\" run-hook",
        );
    }
    bundle
        .script(
            "ApplicationStart",
            "slow.sh",
            &format!(
                "echo warming up\nwhile [ ! -e '{}' ]; do sleep 0.05; done",
                gate.display()
            ),
        )
        .build()
}

#[test]
fn a_terminal_gets_a_spinner_short_lines_and_colour_unless_no_color() {
    let env = Env::new();
    let gate = env.path("gate");
    let bundle = slow_bundle(&env, "v1", &gate);
    let bundle_arg = bundle.to_str().unwrap();
    // The spinner names the running script and counts its time: wait until it has shown more
    // than a second, then let the script finish.
    let spinner = regex::Regex::new(r"ApplicationStart › scripts/slow\.sh\S* \S*1\.\d s").unwrap();
    let (code, out) = under_pty(&env, &["deploy", "--bundle", bundle_arg], &[], |out| {
        let seen = spinner.is_match(out);
        if seen {
            std::fs::write(&gate, "").unwrap();
        }
        seen
    });
    assert_eq!(code, 0, "{out}");
    assert!(
        spinner.is_match(&out),
        "no spinner with the script's name and time: {out:?}"
    );
    let plain = strip_ansi(&out);
    let lines: Vec<&str> = plain.lines().map(str::trim).collect();
    let id = env.current().unwrap();
    assert!(
        lines
            .iter()
            .any(|l| regex::Regex::new(r"^✓ ApplicationStart \d+\.\d\d s$")
                .unwrap()
                .is_match(l)),
        "one line for the event with its duration: {plain}"
    );
    assert!(
        lines
            .iter()
            .any(|l| regex::Regex::new(r"^✓ scripts/slow\.sh 1?\d\.\d+ s$")
                .unwrap()
                .is_match(l)),
        "the script's line with its duration: {plain}"
    );
    for event in [
        "ApplicationStop",
        "BeforeInstall",
        "AfterInstall",
        "ValidateService",
    ] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("· ") && l.contains(event) && l.ends_with("nothing to do")),
            "{event}, whose only script had nothing to do, is folded: {plain}"
        );
    }
    assert!(!plain.contains("run-hook"), "{plain}");
    assert!(
        lines.iter().any(|l| l.starts_with("✓ DownloadBundle ")),
        "{plain}"
    );
    assert!(
        lines.iter().any(
            |l| regex::Regex::new(&format!(r"^✓ deployed {id} in \d+\.\d\d s$"))
                .unwrap()
                .is_match(l)
        ),
        "the final line: {plain}"
    );
    assert!(
        !plain.contains("] warming up"),
        "the raw log is not streamed without --verbose: {plain}"
    );
    assert!(
        !plain.contains("hooks: d-"),
        "the CLI's pipe summary is replaced: {plain}"
    );
    assert!(has_sgr(&out), "--color auto colours a terminal: {out:?}");

    // NO_COLOR: the same lines, no colour; --verbose adds the full log.
    std::fs::remove_file(&gate).unwrap();
    let v2 = slow_bundle(&env, "v2", &gate);
    std::fs::write(&gate, "").unwrap();
    let (code, out) = under_pty(
        &env,
        &["deploy", "--verbose", "--bundle", v2.to_str().unwrap()],
        &[("NO_COLOR", "1")],
        |_| false,
    );
    assert_eq!(code, 0, "{out}");
    assert!(!has_sgr(&out), "NO_COLOR leaves colour out: {out:?}");
    assert!(out.contains("✓ deployed d-"), "{out}");
    assert!(
        out.contains("[ApplicationStart scripts/slow.sh stdout] warming up"),
        "--verbose streams the log lines: {out}"
    );

    // --color always beats NO_COLOR.
    let v3 = slow_bundle(&env, "v3", &gate);
    let (code, out) = under_pty(
        &env,
        &[
            "--color",
            "always",
            "deploy",
            "--bundle",
            v3.to_str().unwrap(),
        ],
        &[("NO_COLOR", "1")],
        |_| false,
    );
    assert_eq!(code, 0, "{out}");
    assert!(has_sgr(&out), "{out:?}");
}

/// The text with escape sequences and spinner redraws removed: what stays on the screen.
fn strip_ansi(text: &str) -> String {
    let escapes = regex::Regex::new(r"\x1b\[[0-9;?]*[A-Za-z]").unwrap();
    let text = escapes.replace_all(text, "");
    text.split('\n')
        .map(|line| {
            line.rsplit('\r')
                .find(|part| !part.is_empty())
                .unwrap_or("")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_pipe_gets_plain_lines_without_escape_codes_and_the_failure_with_its_output() {
    let env = Env::new();
    let v1 = env
        .bundle("v1")
        .script("ApplicationStart", "start.sh", "echo starting")
        .build();
    let run = env.hooks(&["deploy", "--bundle", v1.to_str().unwrap()]);
    run.expect(0);
    let (out, err) = (run.stdout(), run.stderr());
    assert!(
        !out.contains('\x1b') && !err.contains('\x1b'),
        "{out:?} {err:?}"
    );
    assert!(!out.contains('\r'), "no spinner redraws: {out:?}");
    let id = env.current().unwrap();
    assert!(
        out.lines().any(|l| l.starts_with("✓ ApplicationStart ")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with(&format!("✓ deployed {id} in "))),
        "{out}"
    );
    assert!(
        !out.contains("==> ApplicationStart"),
        "the raw log stays in the file: {out}"
    );
    assert!(env.log(&id).contains("==> ApplicationStart"));
    // What scripts read on stderr stays.
    assert!(
        err.contains(&format!("hooks: {id} succeeded; current -> releases/{id}")),
        "{err}"
    );

    let v2 = env
        .bundle("v2")
        .script("ApplicationStart", "start.sh", "echo starting")
        .script(
            "ValidateService",
            "check.sh",
            "echo 'checking /health'\necho 'connection refused' >&2\nexit 7",
        )
        .build();
    let run = env.hooks(&["deploy", "--bundle", v2.to_str().unwrap()]);
    run.expect(1);
    let out = run.stdout();
    assert!(!out.contains('\x1b'), "{out:?}");
    let failed = out
        .lines()
        .position(|l| l.starts_with("    ✗ scripts/check.sh "))
        .unwrap_or_else(|| panic!("the failing script's line: {out}"));
    assert!(
        out.lines()
            .nth(failed)
            .unwrap()
            .contains("exited with code 7"),
        "{out}"
    );
    // stdout and stderr are read apart, so their lines may come in either order.
    let mut tail: Vec<&str> = out.lines().skip(failed + 1).take(2).collect();
    tail.sort();
    assert_eq!(
        tail,
        ["      │ checking /health", "      │ connection refused"],
        "the end of its output under it: {out}"
    );
    assert!(out.contains(&format!("↩ restoring {id}")), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("✗ failed d-") && l.contains(&format!("rolled back to {id}:"))),
        "{out}"
    );

    // --color always colours a pipe too (and beats NO_COLOR).
    let output = std::process::Command::new(hooks_bin())
        .args(["--color", "always", "rollback"])
        .env("HOOKS_ROOT", env.root())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    // v1 is current: there is nothing older to go back to, refused with exit 3.
    assert_eq!(output.status.code(), Some(3), "{out}");
    assert!(has_sgr(&out), "{out:?}");
}

/// Every stdout line of `run` as JSON (failing the test on any other line).
fn json_lines(run: &common::Run) -> Vec<serde_json::Value> {
    let out = run.stdout();
    out.lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}\n{out}"))
        })
        .collect()
}

/// `type` or `type:event`/`type:script`/`type:step` of each object, for sequence checks.
fn sequence(events: &[serde_json::Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            let kind = e["type"].as_str().unwrap();
            match kind {
                "script_start" | "script_end" => {
                    format!("{kind}:{}", e["script"].as_str().unwrap())
                }
                "step_start" | "step_end" => format!("{kind}:{}", e["step"].as_str().unwrap()),
                "event_start" | "event_end" | "event_skipped" => {
                    format!("{kind}:{}", e["event"].as_str().unwrap())
                }
                other => other.to_owned(),
            }
        })
        .collect()
}

#[test]
fn json_lines_follow_a_deployment_its_failure_and_restore_and_a_rollback() {
    let env = Env::new();
    let v1 = env
        .bundle("v1")
        .script("AfterInstall", "setup.sh", "echo setting up")
        .script("ApplicationStart", "start.sh", "echo starting")
        .build();
    let run = env.hooks(&["deploy", "--json", "--bundle", v1.to_str().unwrap()]);
    run.expect(0);
    let events = json_lines(&run);
    let v1_id = env.current().unwrap();
    for event in &events {
        assert_eq!(event["deployment_id"], v1_id.as_str(), "{event}");
        assert!(event["time"].as_str().unwrap().ends_with('Z'), "{event}");
    }
    let start = &events[0];
    assert_eq!(start["type"], "deployment_start");
    assert_eq!(start["kind"], "deploy");
    assert!(
        start["log"]
            .as_str()
            .unwrap()
            .ends_with(&format!("logs/{v1_id}.log"))
    );
    assert_eq!(
        sequence(&events),
        [
            "deployment_start",
            "event_start:DownloadBundle",
            "event_end:DownloadBundle",
            "event_skipped:BeforeBlockTraffic",
            "event_skipped:BlockTraffic",
            "event_skipped:AfterBlockTraffic",
            "event_skipped:ApplicationStop",
            "event_start:BeforeInstall",
            "event_end:BeforeInstall",
            "event_start:Install",
            "step_start:install",
            "step_end:install",
            "event_end:Install",
            "event_start:AfterInstall",
            "script_start:scripts/setup.sh",
            "script_end:scripts/setup.sh",
            "event_end:AfterInstall",
            "step_start:switch",
            "step_end:switch",
            "event_start:ApplicationStart",
            "script_start:scripts/start.sh",
            "script_end:scripts/start.sh",
            "event_end:ApplicationStart",
            "event_start:ValidateService",
            "event_end:ValidateService",
            "event_skipped:BeforeAllowTraffic",
            "event_skipped:AllowTraffic",
            "event_skipped:AfterAllowTraffic",
            "result",
        ]
    );
    for end in events.iter().filter(|e| e["type"] == "event_end") {
        assert_eq!(end["result"], "succeeded", "{end}");
        assert!(end["duration_ms"].is_u64(), "{end}");
        assert!(end["error"].is_null(), "{end}");
    }
    let switch = events
        .iter()
        .find(|e| e["type"] == "step_end" && e["step"] == "switch")
        .unwrap();
    assert_eq!(switch["detail"], format!("current -> releases/{v1_id}"));
    let result = events.last().unwrap();
    assert_eq!(result["outcome"], "deployed");
    assert_eq!(result["exit_code"], 0);
    assert!(result["duration_ms"].is_u64());
    assert!(
        !run.stderr().contains('{'),
        "no JSON on stderr: {}",
        run.stderr()
    );

    // A failing ValidateService: its end says why, the restore of v1 follows, and the result
    // names what serves.
    let v2 = env
        .bundle("v2")
        .script("ApplicationStart", "start.sh", "echo starting")
        .script("ValidateService", "check.sh", "echo unhealthy\nexit 3")
        .build();
    let run = env.hooks(&[
        "deploy",
        "--json",
        "--quiet",
        "--bundle",
        v2.to_str().unwrap(),
    ]);
    run.expect(1);
    let events = json_lines(&run);
    let v2_id = events[0]["deployment_id"].as_str().unwrap().to_owned();
    let seq = sequence(&events);
    let failed = events
        .iter()
        .find(|e| e["type"] == "event_end" && e["event"] == "ValidateService")
        .unwrap();
    assert_eq!(failed["result"], "failed");
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("exited with code 3"),
        "{failed}"
    );
    let script = events
        .iter()
        .find(|e| e["type"] == "script_end" && e["script"] == "scripts/check.sh")
        .unwrap();
    assert_eq!(script["result"], "failed");
    let rollback = seq
        .iter()
        .position(|s| s == "rollback_start")
        .expect("rollback_start");
    assert!(
        rollback
            > seq
                .iter()
                .position(|s| s == "event_end:ValidateService")
                .unwrap()
    );
    assert_eq!(events[rollback]["to"], v1_id.as_str());
    assert_eq!(
        seq[rollback + 1..],
        [
            // v2 is stopped (it has no ApplicationStop script), v1 set up and started again.
            "event_start:ApplicationStop",
            "event_end:ApplicationStop",
            "event_start:Install",
            "step_start:install",
            "step_end:install",
            "event_end:Install",
            "step_start:switch",
            "step_end:switch",
            "event_start:ApplicationStart",
            "script_start:scripts/start.sh",
            "script_end:scripts/start.sh",
            "event_end:ApplicationStart",
            "event_start:ValidateService",
            "event_end:ValidateService",
            "rollback_end",
            "result",
        ]
    );
    let end = &events[events.len() - 2];
    assert_eq!(end["result"], "succeeded");
    assert_eq!(end["restored"], v1_id.as_str());
    let result = events.last().unwrap();
    assert_eq!(result["outcome"], "failed");
    assert_eq!(result["exit_code"], 1);
    assert_eq!(result["restored"], v1_id.as_str());
    assert_eq!(result["deployment_id"], v2_id.as_str());
    assert!(
        result["error"]
            .as_str()
            .unwrap()
            .contains("ValidateService failed"),
        "{result}"
    );
    assert_eq!(env.current().unwrap(), v1_id);

    // `hooks rollback --json` after a good v3: back to v1.
    let v3 = env
        .bundle("v3")
        .script("ApplicationStart", "start.sh", "echo starting")
        .build();
    env.deploy(&v3, &[]).expect(0);
    let v3_id = env.current().unwrap();
    let run = env.hooks(&["rollback", "--json", "--to", &v1_id]);
    run.expect(0);
    let events = json_lines(&run);
    let seq = sequence(&events);
    assert_eq!(events[0]["type"], "deployment_start");
    assert_eq!(events[0]["kind"], "rollback");
    assert_eq!(events[0]["target"], v1_id.as_str());
    assert_eq!(
        seq[1..],
        [
            "event_start:ApplicationStop",
            "event_end:ApplicationStop",
            "event_start:Install",
            "step_start:install",
            "step_end:install",
            "event_end:Install",
            "step_start:switch",
            "step_end:switch",
            "event_start:ApplicationStart",
            "script_start:scripts/start.sh",
            "script_end:scripts/start.sh",
            "event_end:ApplicationStart",
            "event_start:ValidateService",
            "event_end:ValidateService",
            "result",
        ]
    );
    assert_eq!(
        events[1]["release"],
        v3_id.as_str(),
        "the replaced release is stopped"
    );
    let result = events.last().unwrap();
    assert_eq!(result["kind"], "rollback");
    assert_eq!(result["outcome"], "rolled_back");
    assert_eq!(result["target"], v1_id.as_str());
    assert_eq!(result["exit_code"], 0);
    assert_eq!(env.current().unwrap(), v1_id);

    // Refused before anything: still one JSON result line.
    let run = env.hooks(&["rollback", "--json", "--to", "d-nope"]);
    run.expect(3);
    let events = json_lines(&run);
    assert_eq!(sequence(&events), ["result"]);
    assert_eq!(events[0]["outcome"], "invalid");
    assert_eq!(events[0]["exit_code"], 3);
    assert!(events[0]["deployment_id"].is_null());
}

/// The subcommands `hooks ARGS --help` lists.
fn subcommands(env: &Env, args: &[&str]) -> Vec<String> {
    let mut all = args.to_vec();
    all.push("--help");
    let run = env.hooks(&all);
    run.expect(0);
    run.stdout()
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .filter(|name| name != "help")
        .collect()
}

#[test]
fn every_command_s_help_shows_an_example() {
    let env = Env::new();
    let top = subcommands(&env, &[]);
    assert!(
        top.contains(&"deploy".to_owned()) && top.len() > 15,
        "{top:?}"
    );
    let mut checked = 0;
    for command in &top {
        let nested = subcommands(&env, &[command]);
        let mut paths: Vec<Vec<&str>> = nested.iter().map(|n| vec![command.as_str(), n]).collect();
        if nested.is_empty() {
            paths.push(vec![command]);
        }
        for path in paths {
            let mut args = path.clone();
            args.push("--help");
            let run = env.hooks(&args);
            run.expect(0);
            assert!(
                run.stdout().contains("Example"),
                "`hooks {}` has no example:\n{}",
                args.join(" "),
                run.stdout()
            );
            checked += 1;
        }
    }
    assert!(checked > 25, "{checked}");
}
