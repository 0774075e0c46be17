//! Weir's SQL: Flink SQL scripts planned by DataFusion and run as streaming jobs over Arrow
//! batches on Weir's runtime.
//!
//! - [`script`]: a script as statements (includes, splitting, line numbers);
//! - [`catalog`]: `CREATE TABLE` with Flink's DDL (watermarks, connector options);
//! - [`types`]: Flink's logical types and their Arrow form;
//! - [`window_tvf`]: the window TVF syntax (`TABLE(TUMBLE(TABLE t, ...))`) and windows;
//! - [`plan`]: a SELECT planned by DataFusion, as a tree of Weir's operators;
//! - `lower` / `typing`: the logical plan lowered to that tree, expressions typed by
//!   Flink's rules;
//! - [`aggregate`], [`window_agg`], [`group_agg`]: aggregate functions and the window and
//!   group aggregate operators, [`window_slices`] the window aggregate by slices,
//!   [`over_agg`] OVER aggregates; [`join`]: the regular join operator; [`changelog`]: row
//!   kinds of updating results; [`rank`]: Top-N and deduplication;
//! - [`values`]: single values and group keys out of Arrow columns;
//! - [`connector`]: connector factories by `'connector'` name (built-ins: `filesystem`,
//!   `blackhole`, `print`), and projection push-down into scans;
//! - [`csv_source`]: the `filesystem` connector's CSV format as a source of batches;
//! - [`job`]: a planned query as a job of vectorised operators;
//! - [`format`]: values printed as Flink prints results;
//! - [`client`]: a script run statement by statement, with its results; [`live`]: a
//!   SELECT's result while it runs, for an interactive client.
//!
//! ```no_run
//! let mut session = weir_sql::client::Session::new(".", 1);
//! session.run_file(std::path::Path::new("script.sql"), &mut std::io::stdout()).unwrap();
//! session.write_results(std::path::Path::new("out")).unwrap();
//! ```

pub mod aggregate;
pub mod catalog;
pub mod changelog;
pub mod client;
pub mod connector;
pub mod csv_source;
mod decimal;
pub mod error;
pub mod format;
mod functions;
pub mod group_agg;
mod interval;
pub mod job;
pub mod join;
mod literal;
pub mod live;
mod lower;
pub mod math_functions;
pub mod over_agg;
pub mod plan;
mod prune;
pub mod rank;
pub mod retention;
pub mod script;
mod time_functions;
pub mod types;
mod typing;
pub mod values;
pub mod window_agg;
pub mod window_slices;
pub mod window_tvf;

pub use error::{Result, SqlError};
