//! The README's first command works and writes what it says.

use std::process::Command;

#[test]
fn demo_runs_and_writes_keys() {
    let dir = std::env::temp_dir().join(format!("tacit-demo-{}", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_tacit-sim"))
        .args(["demo", "--out"])
        .arg(&dir)
        .output()
        .expect("run tacit-sim");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("ok: the protocol round trip works"));
    assert!(stdout.contains("rejected: bad device signature"));
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let secret = names
        .iter()
        .find(|n| n.ends_with(".secret"))
        .expect("secret key written");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join(secret))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "private key readable by others: {mode:o}");
    }
    assert!(names.iter().any(|n| n == "demo-envelope.bin"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn unwritable_output_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_tacit-sim"))
        .args(["demo", "--out"])
        .arg("/proc/definitely/not/writable")
        .output()
        .expect("run tacit-sim");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("tacit-sim: "));
}
