//! A closed-loop HTTP load generator: `--concurrency` requests in flight over keep-alive
//! connections, request bodies taken in order from a JSON-lines file, a warm-up that is
//! not counted, then a measured window; prints one JSON object (requests, errors, req/s,
//! latency percentiles) on stdout.
//!
//! Bodies are used in file order, each at most once unless `--cycle` is given: signed
//! one-time requests (e.g. `/v1/authenticate`) can be pre-made in a file and the run
//! ends when they run out. `--lines request` reads each line as
//! `{"body": <JSON value or string>, "headers": {"name": "value"}}` for per-request
//! headers.
//!
//! ```sh
//! cargo run --release -p tacit-backend --example loadgen -- \
//!   --url http://127.0.0.1:8080/v2/models/gait/infer --bodies infer-8.jsonl --cycle \
//!   --concurrency 32 --duration 10s --warmup 2s
//! ```
//!
//! Only completions inside the measured window count: requests that started in the
//! warm-up and end in the window count, those still in flight at its end do not.
//! Latency is that of successful requests (status = `--expect-status`); every other
//! outcome is an error, counted by status (`0` = no response: connection or timeout).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};

/// Closed-loop HTTP load generator (fixed concurrency; bodies from a JSON-lines file).
#[derive(Parser, Debug)]
struct Args {
    /// Target URL.
    #[arg(long)]
    url: String,
    /// HTTP method.
    #[arg(long, default_value = "POST")]
    method: String,
    /// Extra header `Name: value`, sent with every request (repeatable). Bodies are sent
    /// with `Content-Type: application/json` unless a header sets another.
    #[arg(long = "header", short = 'H')]
    headers: Vec<String>,
    /// JSON-lines file of request bodies, used in file order (empty lines skipped).
    /// Without it, requests have no body.
    #[arg(long)]
    bodies: Option<PathBuf>,
    /// What a line is: `body` (sent as is) or `request` (`{"body": ..., "headers":
    /// {...}}`, or `"body_base64"` for a body that is not text).
    #[arg(long, value_enum, default_value = "body")]
    lines: LineFormat,
    /// Start again at the first body once all are used; without it every body is sent
    /// at most once and the run ends when they run out.
    #[arg(long)]
    cycle: bool,
    /// Requests in flight (one connection each).
    #[arg(long, short = 'c', default_value_t = 8)]
    concurrency: usize,
    /// Length of the measured window (`10s`, `500ms`, `1m`; a bare number is seconds).
    #[arg(long, default_value = "10s")]
    duration: String,
    /// End the measured window after this many completed requests instead (or at
    /// `--duration`, whichever comes first).
    #[arg(long)]
    requests: Option<u64>,
    /// Warm-up before the window: requests are sent but not counted.
    #[arg(long, default_value = "2s")]
    warmup: String,
    /// Timeout of one request.
    #[arg(long, default_value = "30s")]
    timeout: String,
    /// The status that counts as success.
    #[arg(long, default_value_t = 200)]
    expect_status: u16,
    /// Threads of the load generator's runtime (it shares the machine with the server).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// A label copied into the output.
    #[arg(long)]
    label: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LineFormat {
    /// The line is the body.
    Body,
    /// The line is `{"body": ..., "headers": {...}}` (or `"body_base64": "..."`).
    Request,
}

/// One prepared request (bodies live as long as the program: sending one copies
/// nothing).
struct Prepared {
    body: Option<&'static [u8]>,
    headers: HeaderMap,
}

/// What one worker saw inside the window.
#[derive(Default)]
struct Tally {
    latencies_ns: Vec<u64>,
    status: BTreeMap<u16, u64>,
    errors: u64,
    first_error: Option<String>,
    last_end: Option<Instant>,
}

fn parse_duration(what: &str, s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let x: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("--{what} {s:?}: expected a duration such as 10s, 500ms, 1m"))?;
    let secs = match unit {
        "ms" => x / 1000.0,
        "s" => x,
        "m" => x * 60.0,
        _ => return Err(format!("--{what} {s:?}: unit must be ms, s or m")),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("--{what} {s:?}: out of range"))
}

fn parse_header(h: &str) -> Result<(HeaderName, HeaderValue), String> {
    let (name, value) = h
        .split_once(':')
        .ok_or_else(|| format!("--header {h:?}: expected `Name: value`"))?;
    let name = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|e| format!("--header {h:?}: {e}"))?;
    let value = HeaderValue::from_str(value.trim()).map_err(|e| format!("--header {h:?}: {e}"))?;
    Ok((name, value))
}

fn load_bodies(args: &Args, common: &HeaderMap) -> Result<Vec<Prepared>, String> {
    let Some(path) = &args.bodies else {
        return Ok(vec![Prepared {
            body: None,
            headers: common.clone(),
        }]);
    };
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let at = || format!("{}:{}", path.display(), i + 1);
        let mut headers = common.clone();
        if !headers.contains_key(CONTENT_TYPE) {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        let body = match args.lines {
            LineFormat::Body => line.as_bytes().to_vec(),
            LineFormat::Request => {
                let v: Value = serde_json::from_str(line).map_err(|e| format!("{}: {e}", at()))?;
                if let Some(h) = v.get("headers") {
                    let h = h
                        .as_object()
                        .ok_or_else(|| format!("{}: headers must be an object", at()))?;
                    for (k, val) in h {
                        let val = val
                            .as_str()
                            .ok_or_else(|| format!("{}: header {k} must be a string", at()))?;
                        let (k, val) = parse_header(&format!("{k}: {val}"))
                            .map_err(|e| format!("{}: {e}", at()))?;
                        headers.insert(k, val);
                    }
                }
                match (v.get("body"), v.get("body_base64")) {
                    (Some(Value::String(s)), None) => s.as_bytes().to_vec(),
                    (Some(other), None) => other.to_string().into_bytes(),
                    (None, Some(Value::String(b))) => tacit_shared::api::b64_decode(b)
                        .ok_or_else(|| format!("{}: body_base64 is not base64", at()))?,
                    _ => return Err(format!("{}: one of \"body\", \"body_base64\"", at())),
                }
            }
        };
        out.push(Prepared {
            body: Some(Vec::leak(body)),
            headers,
        });
    }
    if out.is_empty() {
        return Err(format!("{}: no bodies", path.display()));
    }
    Ok(out)
}

/// An error with its causes (reqwest's message alone does not say what failed).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(&format!(": {c}"));
        cause = c.source();
    }
    s
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    // Nearest rank.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1e6
}

/// CPU time (user + system) this process used so far, where `/proc` tells (Linux).
fn own_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // USER_HZ is 100 on every Linux architecture that Rust targets.
    Some(ticks / 100.0)
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(v) => {
            println!("{v}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<Value, String> {
    if args.concurrency == 0 || args.concurrency > 10_000 {
        return Err("--concurrency must be 1..=10000".into());
    }
    if args.threads == 0 || args.threads > 256 {
        return Err("--threads must be 1..=256".into());
    }
    let duration = parse_duration("duration", &args.duration)?;
    let warmup = parse_duration("warmup", &args.warmup)?;
    let timeout = parse_duration("timeout", &args.timeout)?;
    let method = reqwest::Method::from_bytes(args.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("--method {:?}: not an HTTP method", args.method))?;
    let url = reqwest::Url::parse(&args.url).map_err(|e| format!("--url {:?}: {e}", args.url))?;
    let mut common = HeaderMap::new();
    for h in &args.headers {
        let (k, v) = parse_header(h)?;
        common.append(k, v);
    }
    let bodies = Arc::new(load_bodies(&args, &common)?);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .tcp_nodelay(true)
        .timeout(timeout)
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    let rt = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    }
    .map_err(|e| format!("runtime: {e}"))?;

    let cycle = args.cycle || args.bodies.is_none();
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let completed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let exhausted = Arc::new(AtomicBool::new(false));
    let limit = args.requests;
    let expect = args.expect_status;

    let started = Instant::now();
    let window_start = started + warmup;
    let window_end = window_start + duration;
    let tallies: Vec<Tally> = rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..args.concurrency {
            let (client, bodies, url, method) =
                (client.clone(), bodies.clone(), url.clone(), method.clone());
            let (next, done, stop, exhausted, completed) = (
                next.clone(),
                done.clone(),
                stop.clone(),
                exhausted.clone(),
                completed.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let mut t = Tally::default();
                while !stop.load(Ordering::Relaxed) && Instant::now() < window_end {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let p = if cycle {
                        &bodies[i % bodies.len()]
                    } else if let Some(p) = bodies.get(i) {
                        p
                    } else {
                        exhausted.store(true, Ordering::Relaxed);
                        break;
                    };
                    let mut req = client.request(method.clone(), url.clone());
                    req = req.headers(p.headers.clone());
                    if let Some(b) = &p.body {
                        req = req.body(*b);
                    }
                    let t0 = Instant::now();
                    let outcome = match req.send().await {
                        Ok(r) => {
                            let status = r.status().as_u16();
                            match r.bytes().await {
                                Ok(_) => Ok(status),
                                Err(e) => Err(error_chain(&e)),
                            }
                        }
                        Err(e) => Err(error_chain(&e)),
                    };
                    let t1 = Instant::now();
                    completed.fetch_add(1, Ordering::Relaxed);
                    if t1 < window_start || t1 > window_end {
                        continue;
                    }
                    if limit.is_some_and(|n| done.fetch_add(1, Ordering::Relaxed) >= n) {
                        stop.store(true, Ordering::Relaxed);
                        break;
                    }
                    t.last_end = Some(t.last_end.map_or(t1, |e| e.max(t1)));
                    let status = match outcome {
                        Ok(s) => s,
                        Err(e) => {
                            t.first_error.get_or_insert(e);
                            0
                        }
                    };
                    *t.status.entry(status).or_default() += 1;
                    if status == expect {
                        t.latencies_ns.push((t1 - t0).as_nanos() as u64);
                    } else {
                        t.errors += 1;
                        t.first_error
                            .get_or_insert_with(|| format!("status {status}"));
                    }
                }
                t
            }));
        }
        let mut out = Vec::new();
        for task in tasks {
            out.push(task.await.unwrap_or_default());
        }
        out
    });

    let mut lat: Vec<u64> = Vec::new();
    let mut status: BTreeMap<u16, u64> = BTreeMap::new();
    let mut errors = 0;
    let mut first_error = None;
    let mut last_end = None::<Instant>;
    for t in tallies {
        lat.extend(t.latencies_ns);
        for (k, v) in t.status {
            *status.entry(k).or_default() += v;
        }
        errors += t.errors;
        first_error = first_error.or(t.first_error);
        last_end = match (last_end, t.last_end) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
    lat.sort_unstable();
    let requests = lat.len() as u64 + errors;
    // The window ends at its deadline, or earlier at the last completion when the run
    // stopped early (request limit reached, bodies used up).
    let early = stop.load(Ordering::Relaxed) || exhausted.load(Ordering::Relaxed);
    let end = match last_end {
        Some(e) if early => e,
        _ => window_end,
    };
    let window = end.saturating_duration_since(window_start).as_secs_f64();
    let mean = if lat.is_empty() {
        0.0
    } else {
        lat.iter().sum::<u64>() as f64 / lat.len() as f64 / 1e6
    };
    Ok(json!({
        "label": args.label,
        "url": args.url,
        "method": method.as_str(),
        "concurrency": args.concurrency,
        "threads": args.threads,
        "bodies": if args.bodies.is_some() { bodies.len() } else { 0 },
        "cycle": cycle,
        "exhausted": exhausted.load(Ordering::Relaxed),
        "warmup_s": warmup.as_secs_f64(),
        "window_s": window,
        "requests": requests,
        "errors": errors,
        "status": status.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "first_error": first_error,
        "req_per_s": if window > 0.0 { requests as f64 / window } else { 0.0 },
        "ok_per_s": if window > 0.0 { lat.len() as f64 / window } else { 0.0 },
        "completed_total": completed.load(Ordering::Relaxed),
        "client_cpu_s": own_cpu_seconds(),
        "latency_ms": {
            "mean": mean,
            "p50": percentile(&lat, 50.0),
            "p90": percentile(&lat, 90.0),
            "p99": percentile(&lat, 99.0),
            "max": percentile(&lat, 100.0),
        },
    }))
}
