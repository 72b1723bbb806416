//! The Rust gait factor service passes the conformance test written with an
//! off-the-shelf OIP v2 client (`scripts/factor_conformance.py`, NVIDIA's
//! `tritonclient[http]`). Needs `TACIT_PYTHON` (the test command's venv); skips
//! with a message without it, fails under CI.

mod common;

use std::time::Duration;

use object_store::ObjectStoreExt;
use tacit_backend::server::spawn_factor;
use tacit_models::FactorKind;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gait_factor_passes_the_oip_conformance_test() {
    let Some(python) = std::env::var_os("TACIT_PYTHON") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI run without TACIT_PYTHON"
        );
        eprintln!("SKIPPED: TACIT_PYTHON not set (the test command sets it)");
        return;
    };
    // On a directory of objects, and (under the test command) on an S3 bucket (moto),
    // where the jobs name their files s3://BUCKET/KEY.
    for backing in common::backings() {
        conformance(&python, &backing).await;
    }
}

async fn conformance(python: &std::ffi::OsStr, backing: &common::Backing) {
    let dir = common::temp_dir("conformance");
    common::ensure_bucket(backing).await;
    let mut settings = common::settings(backing, &dir);
    settings.factor.model_poll_ms = 100;
    let f = spawn_factor(settings, FactorKind::Gait).await.unwrap();
    let path = object_store::path::Path::parse("models/gait.tcm").unwrap();
    f.service
        .objects()
        .object_store()
        .put(
            &path,
            common::gait_model(&common::gait_population(), 10, 1).into(),
        )
        .await
        .unwrap();
    for _ in 0..100 {
        if f.service.model().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let url = f.url();
    let mut args: Vec<std::ffi::OsString> = vec![
        url.into(),
        "gait".into(),
        "--factor".into(),
        "gait".into(),
        // Written as the gateway writes them: encrypted at rest (the default).
        "--at-rest-key".into(),
        common::at_rest_key().into(),
        // The factor token, as the gateway sends it.
        "--token-file".into(),
        common::factor_token().into(),
    ];
    match backing {
        common::Backing::Embedded => {
            args.extend(["--objects-dir".into(), dir.join("objects").into()]);
        }
        common::Backing::PostgresS3 {
            s3_endpoint,
            bucket,
            ..
        } => {
            args.extend([
                "--s3-endpoint".into(),
                s3_endpoint.into(),
                "--bucket".into(),
                bucket.into(),
            ]);
        }
    }
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scripts/factor_conformance.py"
    );
    let python = python.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(script)
            .args(args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stderr}");
    let last = stdout.lines().last().unwrap_or_default();
    eprintln!("conformance ({backing:?}): {last}");
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(last.contains(" passed, 0 failed"), "{last}");
    assert!(!last.contains("skipped"), "{last}");
    f.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
