//! A local CloudWatch plane: the metrics, logs, alarms and dashboard that `sam deploy`
//! ships, computed on this machine from what the local stack does.
pub mod alarm;
pub mod clock;
pub mod composite;
pub mod insights;
pub mod math;
pub mod store;
