//! `template.yaml` as CloudFormation will see it: translated offline by
//! aws-sam-translator (`scripts/translate-template`, installed into `.venv` by
//! scripts/test), once per test process.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "a template that cannot be translated fails the test loudly"
)]

use std::sync::OnceLock;

use serde_json::Value;

use crate::gateway::workspace_root;

/// The translated template.
pub fn translated() -> &'static Value {
    static TRANSLATED: OnceLock<Value> = OnceLock::new();
    TRANSLATED.get_or_init(|| {
        let root = workspace_root();
        let python = root.join(".venv/bin/python");
        assert!(
            python.is_file(),
            "aws-sam-translator is installed into .venv by scripts/test; run that"
        );
        let output = std::process::Command::new(python)
            .arg(root.join("scripts/translate-template"))
            .arg(root.join("template.yaml"))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    })
}

/// The translated template's resources.
pub fn resources() -> &'static serde_json::Map<String, Value> {
    translated()["Resources"].as_object().unwrap()
}

/// The resources of one type, with their logical ids.
pub fn of_type(kind: &str) -> impl Iterator<Item = (&'static String, &'static Value)> {
    resources().iter().filter(move |(_, r)| r["Type"] == kind)
}
