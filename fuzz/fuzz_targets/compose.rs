//! Whatever bytes a compose file holds, `import compose` answers (groups or an error) without a
//! panic, a hang or unbounded memory; what it prints, `validate` takes.
#![no_main]

use catalyst_import::compose::{Request, import};
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let variables = BTreeMap::from([("SET".to_string(), "8".to_string())]);
    let read = |path: &str| {
        if path == "app.env" { Ok("A=1\nB=\"two $SET\"\n".to_string()) } else { Err("absent".to_string()) }
    };
    let request =
        Request { text, file: "fuzz.yml", vm: "vm", namespace: "ns", variables: &variables, read: &read, only: &[] };
    let Ok(imported) = import(&request) else { return };
    let documents: Vec<String> = imported.groups.iter().filter_map(|g| catalyst_core::yaml::to_string(g).ok()).collect();
    let (_, errors) = catalyst_core::manifest::parse("imported.yaml", &documents.join("---\n"));
    assert!(errors.is_empty(), "the import printed what validate refuses: {errors:?}");
});
