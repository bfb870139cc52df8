//! `deploy.services` in the appspec: defaults accepted, every mistake reported with its
//! position, key and what to write (through `hooks validate`, as a user sees it).

use crate::common;

use common::Env;

fn validate(env: &Env, services: &str) -> common::Run {
    let path = env.path("appspec.yml");
    std::fs::write(
        &path,
        format!("version: 0.0\nos: linux\ndeploy:\n  services:\n{services}"),
    )
    .unwrap();
    env.hooks(&["validate", path.to_str().unwrap()])
}

#[test]
fn a_complete_service_is_valid() {
    let env = Env::new();
    validate(
        &env,
        "    - name: sample\n      command: [bin/sample-service, --verbose]\n      instances: 3\n      env_file: sample.env\n      config_path: config/instance-%i.yml\n      listen: 127.0.0.1:8080\n      health: {type: http, path: /health, interval: 500ms, deadline: 30}\n      stop_signal: SIGTERM\n      drain: 30s\n      manager: supervisor\n      logs: {max_size: 10M, keep: 14, files: [log/sample.log, /var/log/sample/error.log]}\n",
    )
    .expect(0);
}

#[test]
fn mistakes_are_reported_with_position_key_and_fix() {
    let env = Env::new();
    let cases: &[(&str, &str)] = &[
        (
            "    - command: bin/x\n",
            "5:7: deploy.services[0].name: the key is missing",
        ),
        (
            "    - name: a\n      command: /usr/bin/x\n",
            "6:16: deploy.services[0].command: '/usr/bin/x' is absolute",
        ),
        (
            "    - name: a\n      command: ../x\n",
            "6:16: deploy.services[0].command: '../x' is not a path inside the release",
        ),
        (
            "    - name: a\n      command: x\n      instances: 0\n",
            "7:18: deploy.services[0].instances: got 0; expected a count from 1 to 64",
        ),
        (
            "    - name: a\n      command: x\n      instances: [b, b]\n",
            "deploy.services[0].instances[1]: instance 'b' is listed twice",
        ),
        (
            "    - name: a\n      command: x\n      health: {path: /h}\n",
            "deploy.services[0].listen: a health check needs the address",
        ),
        (
            "    - name: a\n      command: x\n      listen: localhost:80\n",
            "deploy.services[0].listen: 'localhost:80' is not IP:PORT",
        ),
        (
            "    - name: a\n      command: x\n      listen: 127.0.0.1:1\n      health: {type: tcp, path: /h}\n",
            "deploy.services[0].health.path: a tcp check connects only",
        ),
        (
            "    - name: a\n      command: x\n      listen: 127.0.0.1:1\n      health: {interval: 1m, deadline: 10s}\n",
            "health.interval: interval 60s is longer than the deadline 10s",
        ),
        (
            "    - name: a\n      command: x\n      stop_signal: STOPPLS\n",
            "deploy.services[0].stop_signal: 'STOPPLS' is not a signal",
        ),
        (
            "    - name: a\n      command: x\n      drain: soon\n",
            "deploy.services[0].drain: got a string ('soon'); expected a positive duration",
        ),
        (
            "    - name: a\n      command: x\n      manager: docker\n",
            "deploy.services[0].manager: got a string ('docker'); expected supervisor",
        ),
        (
            "    - name: a\n      command: x\n      scope: user\n",
            "deploy.services[0].scope: scope applies to systemd units only",
        ),
        (
            "    - name: a\n      command: x\n      logs: {max_size: 10Q}\n",
            "deploy.services[0].logs.max_size: got a string ('10Q')",
        ),
        (
            "    - name: a\n      command: x\n      logs: {files: log/a.log}\n",
            "deploy.services[0].logs.files: got a string ('log/a.log'); expected a list of log files",
        ),
        (
            "    - name: a\n      command: x\n      logs: {files: [../a.log]}\n",
            "deploy.services[0].logs.files[0]: '../a.log'",
        ),
        (
            "    - name: a\n      command: x\n      logs: {files: ['log/a b.log']}\n",
            "deploy.services[0].logs.files[0]: 'log/a b.log' holds a space",
        ),
        (
            "    - name: a\n      command: x\n      comand: y\n",
            "unknown key 'comand' in a service — did you mean 'command'?",
        ),
        (
            "    - name: a b\n      command: x\n",
            "deploy.services[0].name: 'a b' cannot name files and units",
        ),
        (
            "    - name: a\n      command: x\n    - name: a\n      command: y\n",
            "service 'a' is declared twice",
        ),
        (
            "    - name: a\n      command: x\n      instances: 60000\n      listen: 127.0.0.1:60000\n",
            "got 60000; expected a count from 1 to 64",
        ),
        (
            "    - name: a\n      command: x\n      instances: 10\n      listen: 127.0.0.1:65530\n",
            "10 instances starting at port 65530 run past port 65535",
        ),
    ];
    for (yaml, expected) in cases {
        let run = validate(&env, yaml);
        assert_eq!(run.code(), 3, "{yaml}");
        let stderr = run.stderr();
        assert!(
            stderr.contains("appspec.yml:") && stderr.contains(expected),
            "for\n{yaml}expected `{expected}` in:\n{stderr}"
        );
    }
}
