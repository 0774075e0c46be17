//! Weir: Apache Flink's architecture and programming model, in Rust.
//!
//! This crate gathers the layers a job program uses; `use weir::prelude::*;` brings the
//! DataStream API, the built-in sources and sinks and the connectors' shortcuts.
//!
//! | layer | crate |
//! |---|---|
//! | DataStream API | [`api`] |
//! | connectors | [`connectors`] |
//! | cluster roles and the embedded mini-cluster | [`cluster`] |
//! | task runtime and exchange | [`runtime`] |
//! | keyed state | [`state`] |
//! | ids, key groups, job graph | [`core`] |

pub use weir_api as api;
pub use weir_cluster as cluster;
pub use weir_connectors as connectors;
pub use weir_core as core;
pub use weir_runtime as runtime;
pub use weir_state as state;

/// Everything a job program usually needs.
pub mod prelude {
    pub use weir_api::prelude::*;
    pub use weir_connectors::prelude::*;
}
