//! The storage suite (`store_support/cases.rs`) against each backend:
//!
//! * `sqlite_local::*` — a SQLite file and a directory in a temp dir; always runs;
//! * `postgres_s3::*` — PostgreSQL from `DATABASE_URL` and S3 from `S3_ENDPOINT`
//!   (credentials and region from `AWS_*`); skipped with a message when either is
//!   unset, failed when `CI` is set. `scripts/tools/postgres.sh` and `s3.sh` start
//!   both and print the variables.

mod store_support;

/// One `#[tokio::test]` per case for one backend.
macro_rules! backend {
    ($backend:ident: $($case:ident),* $(,)?) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let test = concat!(stringify!($backend), "::", stringify!($case));
                    let Some(fx) = crate::store_support::Fixture::$backend(test).await else {
                        return;
                    };
                    crate::store_support::cases::$case(&fx).await;
                    fx.cleanup().await;
                }
            )*
        }
    };
}

/// The same cases for every backend.
macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        backend!(sqlite_local: $($case),*);
        backend!(postgres_s3: $($case),*);
    };
}

suite!(
    migrations_idempotent,
    users,
    training_consent,
    token_single_use_concurrent,
    token_expiry,
    devices,
    envelopes,
    envelopes_concurrent,
    group_commit,
    unfinished_packs,
    delete_user,
    health,
    authentication_state,
    at_rest,
    at_rest_upgrade,
    retention,
    decisions,
    small_writes_concurrent,
    failed_transactions,
    gateways_crossing_writes,
    packs_rolled_back_among_others,
);
