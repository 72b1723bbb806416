//! Evaluation protocols, error-rate metrics and reports.

pub mod metrics;
mod protocols;
mod report;

pub use protocols::{EvalConfig, Judgement, judge, one_class, population};
pub use report::{EvalReport, MethodResult, det_svg};
