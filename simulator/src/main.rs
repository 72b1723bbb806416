//! `tacit-sim` — the end-to-end simulator: a world of synthetic people with phones
//! running the real mobile core, a real backend in this process, days of use,
//! impostors and attackers; prints what it measured and writes `report.json`.
//! `tacit-sim demo` is the protocol demo (seal and open one envelope).

mod demo;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tacit_simulator::world::{BackendKind, WorldConfig, run};

/// Tacit end-to-end simulator.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    world: WorldArgs,
}

#[derive(Subcommand)]
enum Command {
    /// The protocol demo: key generation, seal and open of one envelope.
    Demo(demo::DemoArgs),
}

/// The world to simulate.
#[derive(clap::Args)]
struct WorldArgs {
    /// People with an enrolled phone.
    #[arg(long, default_value_t = 200)]
    people: usize,
    /// Run the people in cohorts of at most N, one after another, each with a backend
    /// and phones of its own (emptied in between), pooled in one report: a world of a
    /// million people in the disk of one cohort. Each finished cohort is saved in
    /// DIR/cohorts. Impostors are people of the same cohort.
    #[arg(long, value_name = "N")]
    cohort: Option<usize>,
    /// Continue a world run in cohorts that stopped part-way: the cohorts it saved in
    /// --dir are kept, the others run (the same settings as before, --cohort included).
    #[arg(long)]
    resume: bool,
    /// Days lived after the enrolment day.
    #[arg(long, default_value_t = 3)]
    days: u32,
    /// Seed of the population and the run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// People (not users) the models are trained on.
    #[arg(long, default_value_t = 40)]
    training_people: usize,
    /// Training steps per model.
    #[arg(long, default_value_t = 300)]
    steps: usize,
    /// Genuine authentications per person and day.
    #[arg(long, default_value_t = 2)]
    auths_per_day: u32,
    /// Chance per person and day that someone else uses the phone.
    #[arg(long, default_value_t = 0.5)]
    impostor_rate: f64,
    /// Chance per person and day of a mimicry attack.
    #[arg(long, default_value_t = 0.25)]
    mimic_rate: f64,
    /// How much of the victim's rhythm a mimic copies (0..=1).
    #[arg(long, default_value_t = 0.5)]
    mimic_strength: f64,
    /// People simulated at once (default: 2 per core).
    #[arg(long)]
    parallel: Option<usize>,
    /// Working directory (emptied first; --resume keeps its saved cohorts): backend
    /// data, phones, saved cohorts, report.
    #[arg(long, default_value = "tacit-sim-world")]
    dir: PathBuf,
    /// Where the phones keep their data (default: DIR/phones); emptied first like
    /// --dir, and apart from it. A folder in memory (e.g. /dev/shm/tacit-phones) keeps
    /// the phones' flushed writes off this machine's disk, as on real phones.
    #[arg(long)]
    phones_dir: Option<PathBuf>,
    /// Sessions of activity on the enrolment day, an hour apart (default 1; 3 with
    /// --learn): 1 is a walk of 150 s and 30 typed entries, more are each 90 s and 20.
    #[arg(long)]
    day0_sessions: Option<u32>,
    /// Train the population models from the world's own day-0 uploads (everyone
    /// consents), gate them against the research-trained ones and promote them; after
    /// the last day retrain on uploads poisoned by --poison-accounts crafted accounts,
    /// which the gate must refuse.
    #[arg(long)]
    learn: bool,
    /// Consenting accounts with crafted uploads before the second retraining.
    #[arg(long, default_value_t = 40)]
    poison_accounts: usize,
    /// Also write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// A clean network between the phones and the backend and no backend restarts
    /// (default: a bad network that drops, duplicates and delays requests and answers
    /// and shows captive portals, and a backend restart midway through every day).
    #[arg(long)]
    clean_network: bool,
    /// Run the backend as this `tacit-backend` binary in a child process instead of in
    /// this one; the restart midway through a day is then `kill -9`.
    #[arg(long, value_name = "PATH", conflicts_with = "backend_url")]
    backend_bin: Option<PathBuf>,
    /// Use a backend already running at this URL (its models loaded; needs its admin
    /// token and --backend-key; no restarts).
    #[arg(long, value_name = "URL")]
    backend_url: Option<String>,
    /// The remote backend's admin token (default: $TACIT_ADMIN_TOKEN, which keeps it
    /// out of the process list).
    #[arg(long)]
    admin_token: Option<String>,
    /// The remote backend's HPKE public key, base64 (`tacit-backend keygen` prints it).
    #[arg(long)]
    backend_key: Option<String>,
    /// Faces, the third factor: a folder of `<person>/<images>` (binary PGM or JPEG;
    /// e.g. ORL). Person i of the world gets its person i: enrolled on the first 5
    /// images, probed with the others. Needs --face-url.
    #[arg(long, value_name = "DIR", requires = "face_url")]
    faces: Option<std::path::PathBuf>,
    /// The face factor service the backend sends the images to (`python -m tacitface
    /// serve` on loopback with TACIT_FACTOR_AUTH=off, calibrated on people who are not
    /// in --faces).
    #[arg(long, value_name = "URL", requires = "faces")]
    face_url: Option<String>,
}

fn simulate(a: WorldArgs) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let cfg = WorldConfig {
        people: a.people,
        cohort: a.cohort,
        resume: a.resume,
        days: a.days,
        seed: a.seed,
        training_people: a.training_people,
        training_steps: a.steps,
        auths_per_day: a.auths_per_day,
        impostor_rate: a.impostor_rate,
        mimic_rate: a.mimic_rate,
        mimic_strength: a.mimic_strength,
        parallel: a.parallel.unwrap_or(2 * cores),
        restarts: !a.clean_network,
        faults: if a.clean_network {
            tacit_simulator::world::Faults::none()
        } else {
            tacit_simulator::world::Faults::bad()
        },
        backend: match (a.backend_bin, a.backend_url) {
            (Some(bin), _) => BackendKind::Process(bin),
            (None, Some(url)) => BackendKind::Remote {
                url,
                admin_token: a
                    .admin_token
                    .or_else(|| std::env::var("TACIT_ADMIN_TOKEN").ok())
                    .unwrap_or_default(),
                public_key: a.backend_key.unwrap_or_default(),
            },
            (None, None) => BackendKind::InProcess,
        },
        day0_sessions: a.day0_sessions.unwrap_or(if a.learn { 3 } else { 1 }),
        learn: a.learn,
        poison_accounts: a.poison_accounts,
        dir: a.dir.clone(),
        phones_dir: a.phones_dir.clone(),
        faces: match (a.faces, a.face_url) {
            (Some(data), Some(factor_url)) => {
                Some(tacit_simulator::world::FaceWorld { data, factor_url })
            }
            _ => None,
        },
    };
    cfg.check()?;
    let bar = indicatif::ProgressBar::new(1);
    bar.set_style(indicatif::ProgressStyle::with_template(
        "{msg:<48} {bar:30} {pos}/{len} [{elapsed}]",
    )?);
    // Without a terminal (a log file, CI) the bar is hidden: print a line per stage
    // and per tenth of it instead, with the time since the start.
    let started = std::time::Instant::now();
    let logged = std::sync::Mutex::new((String::new(), u64::MAX));
    let to_terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let progress = |stage: &str, done: u64, total: u64| {
        bar.set_message(stage.to_string());
        bar.set_length(total);
        bar.set_position(done);
        if to_terminal {
            return;
        }
        let tenth = (done * 10).checked_div(total).unwrap_or(0);
        if let Ok(mut last) = logged.lock()
            && (last.0 != stage || last.1 != tenth)
        {
            *last = (stage.to_string(), tenth);
            eprintln!(
                "[{:>7.1} s] {stage}: {done}/{total}",
                started.elapsed().as_secs_f64()
            );
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = match rt.block_on(run(&cfg, &progress)) {
        Ok(r) => r,
        Err(e) => {
            // Exit before the runtime is dropped: phones still running on blocking
            // threads would otherwise panic on its shutdown, burying the error.
            bar.finish_and_clear();
            eprintln!("tacit-sim: {e:#}");
            std::process::exit(1);
        }
    };
    bar.finish_and_clear();
    println!("{}", report.table());
    // Written as it is encoded: a world of a million people has millions of scores,
    // whose JSON as one string would be hundreds of megabytes more memory.
    let path = a.dir.join("report.json");
    let write = |to: &std::path::Path| -> anyhow::Result<()> {
        let failed = |e: &dyn std::fmt::Display| anyhow::anyhow!("{}: {e}", to.display());
        let file = std::fs::File::create(to).map_err(|e| failed(&e))?;
        let mut out = std::io::BufWriter::new(file);
        serde_json::to_writer_pretty(&mut out, &report).map_err(|e| failed(&e))?;
        std::io::Write::flush(&mut out).map_err(|e| failed(&e))
    };
    write(&path)?;
    if let Some(p) = &a.json {
        write(p)?;
    }
    let html = a.dir.join("report.html");
    std::fs::write(&html, report.html()).map_err(|e| anyhow::anyhow!("{}: {e}", html.display()))?;
    println!("report: {} (and report.json)", html.display());
    let e = &report.envelopes;
    if e.lost > 0 || e.duplicated > 0 {
        return Err(anyhow::anyhow!(
            "{} envelopes lost, {} duplicated",
            e.lost,
            e.duplicated
        ));
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Demo(args)) => demo::run(args),
        None => simulate(cli.world),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tacit-sim: {e:#}");
            ExitCode::FAILURE
        }
    }
}
