//! `tacit-sim demo` — the protocol demo: generate a backend HPKE key pair and a device
//! key, seal a demo envelope of feature records, open it as the backend would, and
//! show that a tampered copy is refused.

use std::path::PathBuf;

use ring::rand::SystemRandom;
use tacit_shared::envelope::{Envelope, SealParams};
use tacit_shared::hpke::{RecipientKeyPair, Suite};
use tacit_shared::identity::{DeviceSigner, Ed25519Signer};
use tacit_shared::payload::{FactorKind, FeatureRecord, Payload};
use tacit_shared::schema::{self, GAIT_V1};

/// Tacit protocol demo: key generation, seal and open of one envelope.
#[derive(clap::Args)]
pub struct DemoArgs {
    /// Write the backend key pair and the demo envelope into this directory
    /// (the private key with mode 0600). Without it nothing is written.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Seal with AES-128-GCM instead of the default ChaCha20-Poly1305.
    #[arg(long)]
    pub aes: bool,
}

fn demo_payload(now_ms: u64) -> Payload {
    // Plausible, synthetic values: a walking window (cadence 1.8 steps/s) and one
    // entry of an 11-key phrase. No real person's data.
    let mut gait: Vec<f32> = GAIT_V1
        .iter()
        .map(|d| d.min.max(0.0) + 0.1 * (d.max - d.min.max(0.0)).min(1.0))
        .collect();
    gait[0] = 1.8;
    let fixed = (0..31)
        .map(|i| match schema::fixed_text_timing(i) {
            schema::FixedTextTiming::Hold(_) => 0.09,
            schema::FixedTextTiming::DownDown(_) => 0.25,
            schema::FixedTextTiming::UpDown(_) => 0.16,
        })
        .collect();
    Payload {
        face_images: Vec::new(),
        records: vec![
            FeatureRecord {
                factor: FactorKind::Gait,
                schema_version: 1,
                window_start_ms: now_ms - 5120,
                window_ms: 5120,
                context: None,
                values: gait,
            },
            FeatureRecord {
                factor: FactorKind::KeystrokeFixed,
                schema_version: 1,
                window_start_ms: now_ms - 3000,
                window_ms: 3000,
                context: Some(*b"demo-phrase-hash"),
                values: fixed,
            },
        ],
    }
}

fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path)?.write_all(bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs the demo.
pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let rng = SystemRandom::new();
    let backend = RecipientKeyPair::generate(&rng)?;
    println!(
        "backend HPKE key  id {}  public {}",
        backend.key_id(),
        hex(backend.public_key().as_bytes())
    );
    let (device, _pkcs8) = Ed25519Signer::generate(&rng)?;
    let device_key = device.public_key();
    println!("device key        Ed25519  id {}", device_key.device_id());

    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as u64;
    let suite = if args.aes {
        Suite::X25519Sha256Aes128Gcm
    } else {
        Suite::X25519Sha256ChaCha20Poly1305
    };
    let payload = demo_payload(now_ms);
    let params = SealParams {
        suite,
        sequence: 1,
        created_at_ms: now_ms,
    };
    let (header, bytes) = Envelope::seal(params, &payload, backend.public_key(), &device, &rng)?;
    println!(
        "sealed envelope   {} bytes ({} payload bytes, {:?})  envelope id {}",
        bytes.len(),
        payload.encoded_len(),
        suite,
        hex(&header.envelope_id)
    );

    let opened = Envelope::open(&bytes, &device_key, |id| {
        (*id == backend.key_id()).then_some(&backend)
    })
    .map_err(|e| anyhow::anyhow!("opening the demo envelope failed: {e}"))?;
    if opened.payload != payload {
        return Err(anyhow::anyhow!(
            "opened payload differs from the sealed one"
        ));
    }
    for r in &opened.payload.records {
        println!(
            "opened record     {:<16} v{}  {} values",
            r.factor.name(),
            r.schema_version,
            r.values.len()
        );
    }

    let mut tampered = bytes.clone();
    let mid = tampered.len() / 2;
    tampered[mid] ^= 1;
    match Envelope::open(&tampered, &device_key, |_| Some(&backend)) {
        Ok(_) => return Err(anyhow::anyhow!("a tampered envelope was accepted")),
        Err(e) => println!("tampered copy     rejected: {} ({})", e, e.code()),
    }

    if let Some(dir) = args.out {
        std::fs::create_dir_all(&dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
        let id = backend.key_id().to_hex();
        let sk = dir.join(format!("hpke-{id}.secret"));
        write_private(&sk, &backend.secret_bytes()[..])
            .map_err(|e| anyhow::anyhow!("{}: {e}", sk.display()))?;
        let pk = dir.join(format!("hpke-{id}.pub"));
        std::fs::write(&pk, backend.public_key().as_bytes())
            .map_err(|e| anyhow::anyhow!("{}: {e}", pk.display()))?;
        let env = dir.join("demo-envelope.bin");
        std::fs::write(&env, &bytes).map_err(|e| anyhow::anyhow!("{}: {e}", env.display()))?;
        println!(
            "wrote             {}, {}, {}",
            sk.display(),
            pk.display(),
            env.display()
        );
    }
    println!("ok: the protocol round trip works");
    Ok(())
}
