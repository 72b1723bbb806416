//! The HTML report opens in a real browser: headless Chromium renders it from a file
//! (no server), its script finds the plots and reports no error, and a screenshot is
//! taken. Needs `TACIT_CHROMIUM` (or `chromium` on the PATH; `scripts/tools/chromium.sh`
//! installs it); skipped with a message without one, failed under CI.

use std::process::Command;

use tacit_simulator::world::Report;

fn chromium() -> Option<String> {
    if let Ok(c) = std::env::var("TACIT_CHROMIUM") {
        return Some(c);
    }
    Command::new("chromium")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| "chromium".to_string())
}

fn headless(chromium: &str, dir: &std::path::Path) -> Command {
    let mut c = Command::new(chromium);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ])
    .arg(format!("--user-data-dir={}", dir.join("profile").display()));
    c
}

#[test]
fn html_report_renders_in_headless_chromium() {
    let Some(chromium) = chromium() else {
        assert!(std::env::var_os("CI").is_none(), "CI run without Chromium");
        eprintln!("SKIP: no Chromium (scripts/tools/chromium.sh installs it)");
        return;
    };
    let dir = std::env::temp_dir().join(format!("tacit-report-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let genuine: Vec<f64> = (0..200).map(|i| 5.0 + (i % 37) as f64).collect();
    let impostor: Vec<f64> = (0..80).map(|i| -30.0 + (i % 29) as f64).collect();
    let report = Report {
        people: 3,
        days: 1,
        seed: 9,
        genuine: [200, 198, 2, 0],
        impostor: [80, 1, 4, 75],
        scores: vec![
            ("gait".into(), genuine.clone(), impostor.clone()),
            ("fused".into(), genuine, impostor),
        ],
        timeline: vec![
            ("setup".into(), 1.0, 0),
            ("day 0 <&>".into(), 3.0, 40),
            ("day 1".into(), 4.5, 90),
        ],
        ..Report::default()
    };
    let page = dir.join("report.html");
    std::fs::write(&page, report.html()).unwrap();
    let url = format!("file://{}", page.display());

    let dom = headless(&chromium, &dir)
        .args(["--virtual-time-budget=2000", "--dump-dom"])
        .arg(&url)
        .output()
        .expect("run chromium");
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.contains(r#"data-rendered="ok""#),
        "the page's script did not run cleanly: {}",
        &dom[..dom.len().min(400)]
    );
    assert!(
        dom.contains("day 0 &lt;&amp;&gt;"),
        "stage names are escaped"
    );

    let shot = dir.join("report.png");
    let out = headless(&chromium, &dir)
        .args(["--window-size=1200,2400", "--hide-scrollbars"])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(&url)
        .output()
        .expect("run chromium");
    let png = std::fs::read(&shot).unwrap_or_else(|e| {
        panic!(
            "no screenshot ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
