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
    let task_manager = Service::builder()
        .name("TaskManager")
        .package("weir.cluster")
        .comment("A TaskManager process: starts and stops the worker processes of jobs.")
        .method(unary(
            "prepare_job",
            "PrepareJob",
            "PrepareJobRequest",
            "PrepareJobResponse",
        ))
        .method(unary("release_job", "ReleaseJob", "JobRequest", "Empty"))
        .build();
    let worker = Service::builder()
        .name("Worker")
        .package("weir.cluster")
        .comment("A job's worker process on a TaskManager: runs the job's subtasks there.")
        .method(unary(
            "submit_task",
            "SubmitTask",
            "SubmitTaskRequest",
            "Empty",
        ))
        .method(unary(
            "cancel_job_tasks",
            "CancelJobTasks",
            "JobRequest",
            "Empty",
        ))
        .method(unary(
            "send_task_control",
            "SendTaskControl",
            "TaskControlRequest",
            "TaskControlResponse",
        ))
        .build();
    let job_master = Service::builder()
        .name("JobMaster")
        .package("weir.cluster")
        .comment("The JobMasters of a JobManager: tasks in workers report here.")
        .method(unary(
            "update_task_execution_state",
            "UpdateTaskExecutionState",
            "TaskExecutionStateReport",
            "Empty",
        ))
        .method(unary(
            "acknowledge_checkpoint",
            "AcknowledgeCheckpoint",
            "CheckpointAckReport",
            "Empty",
        ))
        .method(unary(
            "decline_checkpoint",
            "DeclineCheckpoint",
            "CheckpointDeclineReport",
            "Empty",
        ))
        .method(unary(
            "finished_input",
            "FinishedInput",
            "FinishedInputReport",
            "Empty",
        ))
        .method(unary(
            "worker_lost",
            "WorkerLost",
            "WorkerLostReport",
            "Empty",
        ))
        .method(unary(
            "report_task_metrics",
            "ReportTaskMetrics",
            "TaskMetricsReport",
            "Empty",
        ))
        .method(unary(
            "sync_watermarks",
            "SyncWatermarks",
            "WatermarkSyncRequest",
            "WatermarkSyncResponse",
        ))
        .build();
    Builder::new().compile(&[resource_manager, task_manager, worker, job_master]);
    println!("cargo:rerun-if-changed=build.rs");
}
