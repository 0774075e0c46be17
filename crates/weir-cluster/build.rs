//! Generates the gRPC services of the cluster's control plane from their Rust description
//! (no `.proto` files and no `protoc`): the messages are prost structs in `src/rpc/`.

use tonic_build::manual::{Builder, Method, Service};

/// One unary method whose request and response are prost messages of `crate::rpc`.
fn unary(name: &str, route: &str, input: &str, output: &str) -> Method {
    Method::builder()
        .name(name)
        .route_name(route)
        .input_type(format!("crate::rpc::{input}"))
        .output_type(format!("crate::rpc::{output}"))
        .codec_path("tonic_prost::ProstCodec")
        .build()
}

fn main() {
    let resource_manager = Service::builder()
        .name("ResourceManager")
        .package("weir.cluster")
        .comment("The ResourceManager of a JobManager: TaskManagers register and heartbeat here.")
        .method(unary(
            "register_task_manager",
            "RegisterTaskManager",
            "RegisterTaskManagerRequest",
            "RegisterTaskManagerResponse",
        ))
        .method(unary(
            "heartbeat",
            "Heartbeat",
            "HeartbeatRequest",
            "HeartbeatResponse",
        ))
        .method(unary(
            "disconnect_task_manager",
            "DisconnectTaskManager",
            "DisconnectTaskManagerRequest",
            "Empty",
        ))
        .build();
    Builder::new().compile(&[resource_manager]);
    println!("cargo:rerun-if-changed=build.rs");
}
