//! Offline checks of every CloudFormation template the project deploys: cfn-lint,
//! `sam validate --lint` and checkov, with the pinned tools `scripts/tools iac` installs
//! (`$IAC_TOOLS`, else `.venv-iac/bin`). Each check is also run once on a template that
//! must fail it, so a tool that silently checks nothing cannot pass. And the check no
//! linter makes: `ReportBatchItemFailures` on exactly the mappings whose functions answer
//! with `batchItemFailures` ([`batch_failure_reporting`]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "template_checks/batch_failure_reporting.rs"]
mod batch_failure_reporting;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_norway::Value;

fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The root template and every nested template it deploys.
fn templates() -> Vec<PathBuf> {
    let mut all = vec![workspace().join("template.yaml")];
    let mut nested: Vec<PathBuf> = std::fs::read_dir(workspace().join("dashboards"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    nested.sort();
    assert!(!nested.is_empty(), "dashboards/ holds no template");
    all.extend(nested);
    all
}

fn tool(name: &str) -> Command {
    let dir = std::env::var_os("IAC_TOOLS")
        .map_or_else(|| workspace().join(".venv-iac/bin"), PathBuf::from);
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} not found; run scripts/tools iac (it installs the pinned tools into .venv-iac) or scripts/test",
        path.display()
    );
    let mut command = Command::new(path);
    // cargo-lambda, sam and checkov find their helpers next to them.
    let mut paths = vec![dir];
    paths.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    command
        .env("PATH", std::env::join_paths(paths).unwrap())
        .env("SAM_CLI_TELEMETRY", "0")
        .env("AWS_DEFAULT_REGION", "eu-west-1")
        .env("AWS_REGION", "eu-west-1")
        .current_dir(workspace());
    command
}

fn run(mut command: Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    eprintln!(
        "{command:?} exited {:?}\n{}{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn cfn_lint(paths: &[PathBuf]) -> Output {
    let mut command = tool("cfn-lint");
    command.args(paths);
    run(command)
}

struct CheckovSummary {
    passed: u64,
    failed: u64,
    skipped: u64,
    parsing_errors: u64,
    failed_checks: Vec<String>,
}

fn checkov(paths: &[PathBuf]) -> CheckovSummary {
    let mut command = tool("checkov");
    command.args([
        "--skip-download",
        "--quiet",
        "--framework",
        "cloudformation",
        "--output",
        "json",
    ]);
    for path in paths {
        command.arg("--file").arg(path);
    }
    let output = run(command);
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("checkov did not print a JSON report: {e}"));
    // One report per framework; a list when several ran.
    let reports = match report {
        serde_json::Value::Array(list) => list,
        one => vec![one],
    };
    let mut summary = CheckovSummary {
        passed: 0,
        failed: 0,
        skipped: 0,
        parsing_errors: 0,
        failed_checks: Vec::new(),
    };
    for report in reports {
        let n = |key: &str| report["summary"][key].as_u64().unwrap_or(0);
        summary.passed += n("passed");
        summary.failed += n("failed");
        summary.skipped += n("skipped");
        summary.parsing_errors += n("parsing_errors");
        for check in report["results"]["failed_checks"]
            .as_array()
            .into_iter()
            .flatten()
        {
            summary.failed_checks.push(format!(
                "{} {} ({})",
                check["check_id"].as_str().unwrap_or("?"),
                check["resource"].as_str().unwrap_or("?"),
                check["check_name"].as_str().unwrap_or("?"),
            ));
        }
    }
    summary
}

/// A template that every checker must reject: an unencrypted queue, a function with
/// a wildcard policy, and a reference to a resource that does not exist.
fn broken_template(dir: &Path) -> PathBuf {
    let path = dir.join("broken.yaml");
    std::fs::write(
        &path,
        r#"AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Resources:
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: !Ref Missing
  Function:
    Type: AWS::Serverless::Function
    Properties:
      Runtime: provided.al2023
      Handler: bootstrap
      CodeUri: .
      Policies:
        - Statement:
            - Effect: Allow
              Action: "*"
              Resource: "*"
"#,
    )
    .unwrap();
    path
}

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("template-checks-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn cfn_lint_finds_nothing_in_the_templates_and_rejects_a_broken_one() {
    let clean = cfn_lint(&templates());
    assert_eq!(
        clean.status.code(),
        Some(0),
        "cfn-lint reported errors or warnings (output above)"
    );
    let dir = scratch();
    let broken = cfn_lint(&[broken_template(&dir)]);
    // cfn-lint's exit code is a bit set: 2 = errors.
    assert_eq!(broken.status.code().map(|c| c & 2), Some(2));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn sam_validate_lint_accepts_the_template_and_rejects_a_broken_one() {
    let mut command = tool("sam");
    command.args(["validate", "--lint", "--template", "template.yaml"]);
    let output = run(command);
    assert!(
        output.status.success(),
        "sam validate --lint failed (output above)"
    );

    let dir = scratch();
    let mut command = tool("sam");
    command
        .args(["validate", "--lint", "--template"])
        .arg(broken_template(&dir));
    assert!(!run(command).status.success());
    std::fs::remove_dir_all(dir).unwrap();
}

/// `(resource, check id, reason)` of every checkov skip written in the templates.
fn written_skips() -> Vec<(String, String, String)> {
    let mut skips = Vec::new();
    for path in templates() {
        let template: Value =
            serde_norway::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for (id, resource) in template["Resources"].as_mapping().unwrap() {
            for skip in resource["Metadata"]["checkov"]["skip"]
                .as_sequence()
                .into_iter()
                .flatten()
            {
                skips.push((
                    id.as_str().unwrap().to_owned(),
                    skip["id"].as_str().unwrap_or_default().to_owned(),
                    skip["comment"].as_str().unwrap_or_default().to_owned(),
                ));
            }
        }
    }
    skips
}

#[test]
fn checkov_fails_no_check_and_every_skip_gives_its_reason() {
    let summary = checkov(&templates());
    assert_eq!(summary.parsing_errors, 0);
    assert!(
        summary.failed_checks.is_empty() && summary.failed == 0,
        "checkov failed checks: {:#?}",
        summary.failed_checks
    );
    assert!(
        summary.passed >= 20,
        "checkov passed only {}",
        summary.passed
    );

    let skips = written_skips();
    assert_eq!(
        summary.skipped,
        skips.len() as u64,
        "checkov skipped a different number of checks than the templates list"
    );
    for (resource, id, reason) in &skips {
        assert!(
            id.starts_with("CKV_"),
            "{resource}: skip without a check id"
        );
        assert!(
            reason.split_whitespace().count() >= 8,
            "{resource} skips {id} without a reason worth reading: {reason:?}"
        );
    }

    let dir = scratch();
    let broken = checkov(&[broken_template(&dir)]);
    assert!(
        broken
            .failed_checks
            .iter()
            .any(|c| c.starts_with("CKV_AWS_27 ")),
        "checkov did not flag the unencrypted queue: {:#?}",
        broken.failed_checks
    );
    std::fs::remove_dir_all(dir).unwrap();
}
