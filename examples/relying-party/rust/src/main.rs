//! `tacit-verify-verdict`: checks one verdict the way a relying party's server does.
//!
//! ```text
//! curl -s http://127.0.0.1:8080/.well-known/jwks.json > jwks.json
//! tacit-verify-verdict --jwks jwks.json --issuer tacit --nonce NONCE [--audience AUD] \
//!     --user USER TOKEN          # or the token on standard input
//! ```
//!
//! Prints the verdict's claims as JSON and exits 0 when it is believed; prints
//! `refused: REASON` and exits 1 otherwise (2: bad arguments).

use std::io::Read;
use std::process::ExitCode;

use tacit_relying_party::{Expected, Verifier, now_s};

const USAGE: &str = "usage: tacit-verify-verdict --jwks FILE --issuer ISS --nonce NONCE \
                     [--audience AUD] --user USER [TOKEN]";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (mut jwks, mut issuer, mut nonce, mut audience, mut user, mut token) =
        (None, None, None, None, None, None);
    while let Some(a) = args.next() {
        let slot = match a.as_str() {
            "--jwks" => &mut jwks,
            "--issuer" => &mut issuer,
            "--nonce" => &mut nonce,
            "--audience" => &mut audience,
            "--user" => &mut user,
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            _ if token.is_none() && !a.starts_with("--") => {
                token = Some(a);
                continue;
            }
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        };
        *slot = args.next();
    }
    // The user is required: a nonce does not say whose session it is, and a token for
    // another account with a leaked nonce must not pass.
    let (Some(jwks), Some(issuer), Some(nonce), Some(user)) = (jwks, issuer, nonce, user) else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let token = match token {
        Some(t) => t,
        None => {
            let mut t = String::new();
            if let Err(e) = std::io::stdin().read_to_string(&mut t) {
                eprintln!("reading the token: {e}");
                return ExitCode::from(2);
            }
            t.trim().to_owned()
        }
    };
    let document = match std::fs::read_to_string(&jwks) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{jwks}: {e}");
            return ExitCode::from(2);
        }
    };
    let expected = Expected {
        issuer: &issuer,
        audience: audience.as_deref(),
        nonce: &nonce,
        user: &user,
    };
    let verified =
        Verifier::from_jwks(&document).and_then(|v| v.verify(&token, &expected, now_s()));
    match verified {
        Ok(verdict) => match serde_json::to_string(&verdict) {
            Ok(json) => {
                println!("{json}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
        Err(refusal) => {
            println!("refused: {refusal}");
            ExitCode::FAILURE
        }
    }
}
