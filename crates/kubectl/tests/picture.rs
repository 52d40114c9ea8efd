//! `plan -o svg|html` as a reviewer sees it: the page rendered by a real browser (headless
//! Chromium), and what it lays out checked from inside the page.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().find(|dir| dir.join("Cargo.lock").exists()).unwrap().to_path_buf()
}

fn plan(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_kubectl-catalyst"))
        .arg("plan")
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap();
    String::from_utf8(output.stdout).unwrap()
}

/// Debian's Chromium (`apt-get install chromium`, as `.ci/run` does).
fn chromium() -> PathBuf {
    let path = PathBuf::from("/usr/bin/chromium");
    assert!(path.exists(), "the browser test needs Chromium: apt-get install chromium");
    path
}

/// Measures, in the rendered page, every element that stands for an object: its kind, name,
/// fill and laid-out size. The browser writes the answer into the DOM it dumps.
const MEASURE: &str = r#"<script>
window.addEventListener('load', () => {
  const shown = [...document.querySelectorAll('[data-kind]')].map(e => {
    const box = e.getBoundingClientRect();
    return {kind: e.dataset.kind, name: e.dataset.name || e.textContent, fill: e.getAttribute('fill'),
            width: box.width, height: box.height, right: box.right};
  });
  const svg = document.querySelector('svg').getBoundingClientRect();
  const out = document.createElement('pre');
  out.id = 'measured';
  out.textContent = JSON.stringify({svgWidth: svg.width, svgHeight: svg.height, shown});
  document.body.appendChild(out);
});
</script>"#;

fn render(html: &str, dir: &Path) -> serde_json::Value {
    let page = dir.join("plan.html");
    std::fs::write(&page, html.replace("</body>", &format!("{MEASURE}</body>"))).unwrap();
    let output = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1200,900",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&output.stdout);
    let start = dom.find("<pre id=\"measured\">").unwrap_or_else(|| panic!("nothing measured: {dom}"));
    let json = &dom[start + "<pre id=\"measured\">".len()..];
    let json = &json[..json.find("</pre>").unwrap()];
    serde_json::from_str(&json.replace("&quot;", "\"").replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))
        .unwrap()
}

fn shown<'a>(measured: &'a serde_json::Value, kind: &str) -> Vec<&'a serde_json::Value> {
    measured["shown"].as_array().unwrap().iter().filter(|e| e["kind"] == kind).collect()
}

#[test]
fn a_browser_shows_every_host_vm_and_group_of_the_reference_layout_and_what_does_not_fit() {
    let dir = std::env::temp_dir().join(format!("catalyst-picture-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&plan(&["-f", "config/samples/catalyst-v3/", "-o", "json"])).unwrap();
    let measured = render(&plan(&["-f", "config/samples/catalyst-v3/", "-o", "html"]), &dir);

    let hosts = shown(&measured, "host");
    assert_eq!(hosts.len(), json["hosts"].as_array().unwrap().len());
    let placed = json["vms"].as_array().unwrap().iter().filter(|v| !v["host"].is_null()).count();
    let unplaced = json["vms"].as_array().unwrap().len() - placed;
    assert_eq!(shown(&measured, "vm").len(), placed);
    assert!(unplaced > 0, "the reference layout does not fit its three hosts");
    let red = shown(&measured, "unplaced");
    assert_eq!(red.len(), unplaced);
    assert!(red.iter().all(|e| e["fill"] == "#d62728"), "what does not fit is red");
    let groups = json["groups"].as_array().unwrap();
    let misfits = groups.iter().filter(|g| g["fits"] == false).count();
    assert_eq!(shown(&measured, "group-misfit").len(), misfits);
    assert_eq!(shown(&measured, "group").len() + misfits, groups.len());
    let verdict = shown(&measured, "verdict");
    assert!(verdict[0]["name"].as_str().unwrap().starts_with("Plan: does NOT fit"), "{verdict:?}");

    // Everything is laid out: visible, and inside the picture.
    let width = measured["svgWidth"].as_f64().unwrap();
    for element in measured["shown"].as_array().unwrap() {
        assert!(element["width"].as_f64().unwrap() > 0.0 && element["height"].as_f64().unwrap() > 0.0, "{element}");
        assert!(element["right"].as_f64().unwrap() <= width + 20.0, "outside the picture: {element}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_svg_is_a_document_of_its_own() {
    let svg = plan(&["-f", "config/samples/minimal/", "-o", "svg"]);
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""), "{svg}");
    assert!(svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("Plan: fits"));
    assert_eq!(svg.matches("data-kind=\"vm\"").count(), 2);
    assert!(!svg.contains("data-kind=\"unplaced\""));
}

/// `status -o svg` in a browser: each of the host's CPUs a cell, the VM's in its colour, and
/// the guest's CPUs under it with each replica's cells.
#[test]
fn a_browser_shows_each_cpu_of_the_live_core_map() {
    let dir = std::env::temp_dir().join(format!("catalyst-status-picture-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_kubectl-catalyst"))
        .args(["status", "-f", "crates/kubectl/tests/fixtures/live.json", "-o", "svg"])
        .current_dir(repo())
        .output()
        .unwrap();
    let svg = String::from_utf8(output.stdout).unwrap();
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""), "{svg}");
    let measured = render(&format!("<!DOCTYPE html><html><body>{svg}</body></html>"), &dir);
    let vm = shown(&measured, "vm");
    assert_eq!(vm.len(), 9, "the VM's 8 vCPUs and its emulator thread's core: {vm:?}");
    assert!(vm.iter().all(|cell| cell["name"] == "billing/db" && cell["fill"] == vm[0]["fill"]));
    let replicas: Vec<&str> = shown(&measured, "replica").iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(replicas, ["sms-1", "sms-2"]);
    // sms-1 holds 2-3 and sms-2 3-4: CPU 3 is red and names both.
    let shared = shown(&measured, "shared");
    assert_eq!(shared.len(), 1);
    assert_eq!((shared[0]["name"].as_str(), shared[0]["fill"].as_str()), (Some("sms-1 and sms-2"), Some("#d62728")));
    let width = measured["svgWidth"].as_f64().unwrap();
    for element in measured["shown"].as_array().unwrap() {
        assert!(element["width"].as_f64().unwrap() > 0.0, "{element}");
        assert!(element["right"].as_f64().unwrap() <= width + 20.0, "outside the picture: {element}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}
