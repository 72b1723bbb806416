//! `tacit-sim --dir` never empties a folder it did not make: the binary refuses a
//! non-empty folder without its marker, exits non-zero and leaves the folder as it was.

use std::process::Command;

#[test]
fn refuses_a_folder_it_did_not_make() {
    let dir = tempfile::tempdir().unwrap();
    let precious = dir.path().join("notes.txt");
    std::fs::write(&precious, "keep me").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tacit-sim"))
        .arg("--dir")
        .arg(dir.path())
        .args(["--people", "2", "--training-people", "4", "--steps", "1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("not made by tacit-sim"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep me");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}
