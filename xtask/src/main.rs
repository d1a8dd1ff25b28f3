//! Workspace automation.
//!
//! `cargo run -p xtask -- codegen` regenerates the protobuf code committed under
//! `crates/solti-api/src/generated/` and `crates/solti-discover/src/generated/` from the
//! `.proto` files in `proto/`, and the encoded descriptor set the task API's gRPC reflection
//! serves (`crates/solti-api/src/generated/solti.task.v1.bin`). It parses the files with `protox` (pure Rust), so no system
//! `protoc` is needed; CI runs it and fails when the committed code differs.

use std::path::Path;

use anyhow::{Context as _, Result, bail};

fn main() -> Result<()> {
    let cmd = std::env::args().nth(1).unwrap_or_default();
    match cmd.as_str() {
        "codegen" => codegen(),
        _ => bail!("usage: cargo run -p xtask -- codegen"),
    }
}

fn codegen() -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("xtask lives one level below the workspace root")?
        .to_path_buf();
    let proto = root.join("proto");
    generate(
        &proto,
        &["solti/task/v1/types.proto", "solti/task/v1/api.proto"],
        &root.join("crates/solti-api/src/generated"),
        // The agents serve gRPC reflection from it.
        Some("solti.task.v1.bin"),
        // prost's codec, with a message that does not decode reported as INVALID_ARGUMENT.
        Some("crate::codec::ProtoCodec"),
    )?;
    generate(
        &proto,
        &["solti/discover/v1/discovery.proto"],
        &root.join("crates/solti-discover/src/generated"),
        None,
        None,
    )?;
    Ok(())
}

/// Generates messages plus both the server and the client of each service: agents serve the
/// task API and call discovery; tests and control-plane doubles need the other halves.
///
/// Also generates canonical proto3-JSON `serde` impls with `pbjson-build` (`<package>.serde.rs`):
/// lowerCamelCase names, 64-bit integers as strings (numbers accepted), enums by name (numbers
/// accepted), default scalars emitted, unknown fields ignored for forward compatibility.
///
/// With `descriptor_file`, also writes the encoded `FileDescriptorSet` of `files` (and what
/// they import) there, for gRPC server reflection. With `codec`, the services use that codec
/// type (a path in the generated crate) instead of `tonic_prost::ProstCodec`.
fn generate(
    proto: &Path,
    files: &[&str],
    out: &Path,
    descriptor_file: Option<&str>,
    codec: Option<&str>,
) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("create {}", out.display()))?;
    let fds = protox::compile(files, [proto]).context("parse .proto files")?;
    let descriptors = prost::Message::encode_to_vec(&fds);
    if let Some(name) = descriptor_file {
        let path = out.join(name);
        std::fs::write(&path, &descriptors).with_context(|| format!("write {}", path.display()))?;
    }
    let mut builder = tonic_prost_build::configure();
    if let Some(codec) = codec {
        builder = builder.codec_path(codec);
    }
    builder
        .build_server(true)
        .build_client(true)
        .build_transport(false)
        .bytes(".solti.task.v1.OutputChunk.line")
        .out_dir(out)
        .emit_rerun_if_changed(false)
        .compile_fds(fds)
        .context("generate Rust code")?;
    pbjson_build::Builder::new()
        .out_dir(out)
        .register_descriptors(&descriptors)
        .context("register descriptors for pbjson")?
        .emit_fields()
        .ignore_unknown_fields()
        .build(&[".solti"])
        .context("generate proto3-JSON serde impls")?;
    println!("generated {}", out.display());
    Ok(())
}
