//! What each subcommand does.

use std::{future::Future, io::Read as _, time::Duration};

use solti_api::pb::{self, stream_task_logs_response::Kind};

use crate::{
    cli::{ApplyArgs, LogsArgs, LsArgs, Output, Phase, RunArgs},
    client::{Client, LogOptions, Readiness, Tail},
    duration,
    error::{EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_TIMEOUT, Error, Result},
    render::{self, Cell, Out},
};

/// The largest spec file `apply` reads (the agents take at most 4 MiB per request).
const MAX_SPEC: u64 = 4 << 20;

/// Shared state of a command.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) client: Client,
    pub(crate) output: Output,
    pub(crate) out: Out,
}

impl Ctx {
    fn json(&self) -> bool {
        self.output == Output::Json
    }
}

/// `solti run`.
pub(crate) async fn run(ctx: &mut Ctx, args: &RunArgs, spec: pb::CreateSpec) -> Result<u8> {
    let slot = spec.slot.clone();
    let id = ctx.client.submit(spec, false).await?;
    submitted(ctx, &id, &slot, args.follow).await?;
    finish(ctx, &id, args.follow, args.wait).await
}

/// Prints the new id and reports a submission the agent dropped at once (busy slot, full
/// queue).
async fn submitted(ctx: &mut Ctx, id: &str, slot: &str, follow: bool) -> Result<()> {
    if ctx.json() {
        ctx.out.json(&pb::SubmitTaskResponse {
            task_id: id.to_owned(),
        })?;
    } else if follow {
        ctx.out.note(&format!("task {id} (slot {slot})"));
    } else {
        ctx.out.line(id)?;
    }
    let task = ctx.client.task(id).await?;
    let status = task.status.unwrap_or_default();
    let phase = pb::TaskStatus::try_from(status.phase).unwrap_or_default();
    if status.attempt == 0 && matches!(phase, pb::TaskStatus::Canceled | pb::TaskStatus::Failed) {
        return Err(Error::failed(format!(
            "task {id} was not started: {} (choose another --slot, or --admission replace|queue)",
            status
                .error
                .unwrap_or_else(|| "refused by admission".to_owned())
        )));
    }
    Ok(())
}

/// After submitting: follow and/or wait as asked, and pick the exit code.
async fn finish(ctx: &mut Ctx, id: &str, follow: bool, wait: bool) -> Result<u8> {
    if !(follow || wait) {
        return Ok(EXIT_OK);
    }
    until_interrupted(id, follow_and_wait(ctx, id, follow)).await
}

/// Runs `work` until Ctrl-C; then says that the task goes on without us (exit 130, as a
/// shell reports a command ended by SIGINT).
async fn until_interrupted(id: &str, work: impl Future<Output = Result<u8>>) -> Result<u8> {
    tokio::select! {
        result = work => result,
        _ = tokio::signal::ctrl_c() => Err(Error {
            code: EXIT_INTERRUPTED,
            message: format!(
                "interrupted: task {id} goes on running on the agent (solti cancel {id} stops it)"
            ),
        }),
    }
}

async fn follow_and_wait(ctx: &mut Ctx, id: &str, follow: bool) -> Result<u8> {
    if follow {
        let opts = LogOptions {
            tail: Some(Tail::All),
            follow: true,
            since_ms: None,
        };
        print_logs(ctx, id, &opts).await?;
    }
    let task = wait_terminal(ctx, id).await?;
    Ok(exit_code(ctx, &task))
}

/// `solti apply -f FILE|-`.
pub(crate) async fn apply(ctx: &mut Ctx, args: &ApplyArgs, spec: pb::CreateSpec) -> Result<u8> {
    let slot = spec.slot.clone();
    let id = ctx.client.submit(spec, true).await?;
    submitted(ctx, &id, &slot, args.follow).await?;
    finish(ctx, &id, args.follow, false).await
}

/// Reads and decodes a proto3-JSON `CreateSpec` (also accepted: `{"spec": {...}}`).
pub(crate) fn read_spec(file: &str) -> Result<pb::CreateSpec> {
    let mut bytes = Vec::new();
    let read = if file == "-" {
        std::io::stdin()
            .lock()
            .take(MAX_SPEC + 1)
            .read_to_end(&mut bytes)
    } else {
        std::fs::File::open(file).and_then(|f| f.take(MAX_SPEC + 1).read_to_end(&mut bytes))
    };
    let name = if file == "-" { "standard input" } else { file };
    read.map_err(|e| Error::usage(format!("-f {name}: {e}")))?;
    if bytes.len() as u64 > MAX_SPEC {
        return Err(Error::usage(format!(
            "-f {name}: over {MAX_SPEC} bytes (the agents accept at most 4 MiB)"
        )));
    }
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error::usage(format!("-f {name}: not JSON: {e}")))?;
    let value = match value {
        serde_json::Value::Object(mut map) if map.len() == 1 && map.contains_key("spec") => {
            map.remove("spec").unwrap_or_default()
        }
        other => other,
    };
    serde_json::from_value(value)
        .map_err(|e| Error::usage(format!("-f {name}: not a CreateSpec (proto3 JSON): {e}")))
}

/// `solti ls`.
pub(crate) async fn ls(ctx: &mut Ctx, args: &LsArgs) -> Result<u8> {
    let phase = args.phase.map(|p| match p {
        Phase::Pending => pb::TaskStatus::Pending,
        Phase::Running => pb::TaskStatus::Running,
        Phase::Succeeded => pb::TaskStatus::Succeeded,
        Phase::Failed => pb::TaskStatus::Failed,
        Phase::Timeout => pb::TaskStatus::Timeout,
        Phase::Canceled => pb::TaskStatus::Canceled,
        Phase::Exhausted => pb::TaskStatus::Exhausted,
    });
    let slot = args.slot.as_deref().filter(|s| !s.is_empty());
    let mut page = ctx.client.list(slot, phase, args.limit, 0).await?;
    let total = page.total;
    // The agent lists oldest first: show the newest `limit`, newest last.
    if total > args.limit {
        page = ctx
            .client
            .list(slot, phase, args.limit, total - args.limit)
            .await?;
    }
    if ctx.json() {
        for task in &page.tasks {
            ctx.out.json(task)?;
        }
        return Ok(EXIT_OK);
    }
    if page.tasks.is_empty() {
        ctx.out.note("no tasks");
        return Ok(EXIT_OK);
    }
    let now = duration::now_ms();
    let ids: Vec<&str> = page
        .tasks
        .iter()
        .map(|t| t.metadata.as_ref().map_or("", |m| m.id.as_str()))
        .collect();
    // Ids are shown without `tsk_`, as short as they stay unique (any unique prefix is
    // accepted back).
    let bare: Vec<&str> = ids
        .iter()
        .map(|id| id.strip_prefix("tsk_").unwrap_or(id))
        .collect();
    let id_len = render::short_id_len(&bare, 10);
    let width = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse::<usize>().ok())
        .filter(|w| *w >= 60)
        .unwrap_or(80);
    let mut rows = Vec::with_capacity(page.tasks.len());
    for task in &page.tasks {
        let meta = task.metadata.clone().unwrap_or_default();
        let status = task.status.clone().unwrap_or_default();
        let slot = task.spec.as_ref().map_or("", |s| s.slot.as_str());
        rows.push(vec![
            Cell::plain(
                meta.id
                    .strip_prefix("tsk_")
                    .unwrap_or(&meta.id)
                    .chars()
                    .take(id_len)
                    .collect::<String>(),
            ),
            Cell::plain(render::truncate(slot, 18)),
            Cell::phase(status.phase),
            Cell::plain(status.attempt.to_string()),
            Cell::plain(status.exit_code.map_or("-".to_owned(), |c| c.to_string())),
            Cell::plain(duration::age(now, meta.created_at)),
            Cell::plain(render::command_line(task.spec.as_ref())),
        ]);
    }
    // The command takes whatever the other columns leave of the width.
    const HEADERS: [&str; 7] = ["ID", "SLOT", "PHASE", "TRY", "EXIT", "AGE", "COMMAND"];
    let fixed: usize = (0..6)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].text().chars().count())
                .chain(std::iter::once(HEADERS[i].len()))
                .max()
                .unwrap_or(0)
                + 2
        })
        .sum();
    let room = width.saturating_sub(fixed).max(10);
    for row in &mut rows {
        if let Some(cmd) = row.last_mut() {
            *cmd = Cell::plain(render::truncate(cmd.text(), room));
        }
    }
    for line in render::table(&HEADERS, &rows, ctx.out.colour) {
        ctx.out.line(&line)?;
    }
    let shown = u32::try_from(page.tasks.len()).unwrap_or(u32::MAX);
    if total > shown {
        ctx.out.note(&format!(
            "showing the newest {shown} of {total} tasks (--limit up to 1000, --slot, --phase)"
        ));
    }
    Ok(EXIT_OK)
}

/// `solti get`.
pub(crate) async fn get(ctx: &mut Ctx, typed: &str) -> Result<u8> {
    let id = ctx.client.resolve(typed).await?;
    let task = ctx.client.task(&id).await?;
    if ctx.json() {
        ctx.out.json(&task)?;
        return Ok(EXIT_OK);
    }
    print_task(ctx, &task)?;
    Ok(EXIT_OK)
}

fn print_task(ctx: &Ctx, task: &pb::TaskData) -> Result<()> {
    let now = duration::now_ms();
    let meta = task.metadata.clone().unwrap_or_default();
    let status = task.status.clone().unwrap_or_default();
    let spec = task.spec.clone().unwrap_or_default();
    let mut rows: Vec<(&str, String)> = vec![("id", meta.id.clone()), ("slot", spec.slot.clone())];
    let phase = if ctx.out.colour {
        Cell::phase(status.phase).coloured()
    } else {
        render::phase_name(status.phase).to_owned()
    };
    rows.push(("phase", phase));
    rows.push(("attempt", status.attempt.to_string()));
    if let Some(code) = status.exit_code {
        rows.push(("exit code", code.to_string()));
    }
    if let Some(error) = &status.error {
        rows.push(("error", error.clone()));
    }
    rows.push(("command", render::command_line(Some(&spec))));
    if let Some(pb::task_kind::Kind::Subprocess(sub)) =
        spec.kind.as_ref().and_then(|k| k.kind.as_ref())
    {
        if let Some(cwd) = &sub.cwd {
            rows.push(("cwd", cwd.clone()));
        }
        if !sub.env.is_empty() {
            let keys: Vec<&str> = sub.env.iter().map(|kv| kv.key.as_str()).collect();
            rows.push(("env", keys.join(", ")));
        }
    }
    let restart = match pb::RestartStrategy::try_from(spec.restart) {
        Ok(pb::RestartStrategy::OnFailure) => "on-failure",
        Ok(pb::RestartStrategy::Always) => "always",
        _ => "never",
    };
    let retries = spec.max_retries.map_or_else(
        || "unlimited retries".to_owned(),
        |n| format!("at most {n} retries"),
    );
    rows.push((
        "restart",
        if restart == "never" {
            restart.to_owned()
        } else {
            format!("{restart}, {retries}")
        },
    ));
    rows.push(("timeout", duration::format_ms(spec.timeout_ms)));
    let admission = match pb::AdmissionStrategy::try_from(spec.admission) {
        Ok(pb::AdmissionStrategy::Replace) => "replace",
        Ok(pb::AdmissionStrategy::Queue) => "queue",
        _ => "drop-if-running",
    };
    rows.push(("admission", admission.to_owned()));
    if !spec.labels.is_empty() {
        let mut labels: Vec<String> = spec
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        labels.sort();
        rows.push(("labels", labels.join(", ")));
    }
    rows.push(("created", render::when(meta.created_at, now)));
    rows.push(("updated", render::when(meta.updated_at, now)));
    for (key, value) in rows {
        ctx.out.line(&format!("{key:<10} {value}"))?;
    }
    Ok(())
}

/// `solti runs`.
pub(crate) async fn runs(ctx: &mut Ctx, typed: &str) -> Result<u8> {
    let id = ctx.client.resolve(typed).await?;
    let runs = ctx.client.runs(&id).await?;
    if ctx.json() {
        for run in &runs {
            ctx.out.json(run)?;
        }
        return Ok(EXIT_OK);
    }
    if runs.is_empty() {
        ctx.out.note("no runs yet");
        return Ok(EXIT_OK);
    }
    let now = duration::now_ms();
    let rows: Vec<Vec<Cell>> = runs
        .iter()
        .map(|r| {
            let took = r.finished_at.map_or_else(
                || {
                    format!(
                        "{} so far",
                        duration::format_ms(u64::try_from(now - r.started_at).unwrap_or(0))
                    )
                },
                |f| duration::format_ms(u64::try_from(f - r.started_at).unwrap_or(0)),
            );
            vec![
                Cell::plain(r.attempt.to_string()),
                Cell::phase(r.status),
                Cell::plain(r.exit_code.map_or("-".to_owned(), |c| c.to_string())),
                Cell::plain(duration::ago(now, r.started_at)),
                Cell::plain(took),
                Cell::plain(render::truncate(r.error.as_deref().unwrap_or(""), 60)),
            ]
        })
        .collect();
    for line in render::table(
        &["ATTEMPT", "PHASE", "EXIT", "STARTED", "TOOK", "ERROR"],
        &rows,
        ctx.out.colour,
    ) {
        ctx.out.line(&line)?;
    }
    Ok(EXIT_OK)
}

/// The log options of `solti logs`, checked before anything is sent.
pub(crate) fn log_options(args: &LogsArgs) -> Result<LogOptions> {
    let tail = match args.tail.as_deref() {
        None => None,
        Some(t) if t.eq_ignore_ascii_case("all") => Some(Tail::All),
        Some(t) => Some(Tail::Lines(t.parse().map_err(|_| {
            Error::usage(format!("--tail {t:?}: expected a number of lines or `all`"))
        })?)),
    };
    let since_ms = args
        .since
        .as_deref()
        .map(|s| {
            duration::parse(s)
                .map_err(|e| Error::usage(format!("--since {e}")))
                .map(|d| {
                    duration::now_ms()
                        .saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                })
        })
        .transpose()?;
    Ok(LogOptions {
        // Everything retained unless narrowed.
        tail: tail.or(if since_ms.is_none() {
            Some(Tail::All)
        } else {
            None
        }),
        follow: args.follow,
        since_ms,
    })
}

/// `solti logs`.
pub(crate) async fn logs(ctx: &mut Ctx, typed: &str, opts: &LogOptions) -> Result<u8> {
    let id = ctx.client.resolve(typed).await?;
    print_logs(ctx, &id, opts).await?;
    Ok(EXIT_OK)
}

/// Streams a task's output to our stdout / stderr (or JSON lines) until the stream ends.
async fn print_logs(ctx: &mut Ctx, id: &str, opts: &LogOptions) -> Result<()> {
    let mut stream = ctx.client.logs(id, opts).await?;
    let mut checked_history = false;
    while let Some(event) = stream.next().await? {
        if !checked_history {
            checked_history = true;
            if opts.wants_history()
                && event.offset.is_none()
                && matches!(ctx.client, Client::Http(_))
            {
                ctx.out
                    .note("note: this agent keeps no output history: showing live output only");
            }
        }
        if ctx.json() {
            ctx.out.json(&event.to_proto())?;
            continue;
        }
        match &event.kind {
            Kind::Chunk(chunk) => {
                let to_stderr = chunk.stream == pb::OutputStreamKind::Stderr as i32;
                ctx.out.raw_line(&chunk.line, to_stderr)?;
            }
            Kind::RunStarted(r) if ctx.out.err_tty => {
                ctx.out.note(&format!("── attempt {} started", r.attempt));
            }
            Kind::RunFinished(r) if ctx.out.err_tty => {
                let how = r.exit_code.map_or_else(
                    || "ended without an exit code (killed or timed out)".to_owned(),
                    |c| format!("exited with {c}"),
                );
                ctx.out.note(&format!("── attempt {} {how}", r.attempt));
            }
            Kind::Lagged(l) => {
                ctx.out.note(&format!(
                    "── {} events skipped (they left the agent's buffer before they were read)",
                    l.skipped
                ));
            }
            Kind::RunStarted(_) | Kind::RunFinished(_) => {}
        }
    }
    Ok(())
}

/// `solti cancel`.
pub(crate) async fn cancel(ctx: &mut Ctx, typed: &str) -> Result<u8> {
    let id = ctx.client.resolve(typed).await?;
    let mut task = ctx.client.cancel(&id).await?;
    // The answer may show the task on its way to CANCELED (its processes still stopping).
    if !render::is_terminal_phase(task.status.as_ref().map_or(0, |s| s.phase)) {
        task = wait_terminal(ctx, &id).await?;
    }
    if ctx.json() {
        ctx.out.json(&task)?;
    } else {
        let status = task.status.unwrap_or_default();
        ctx.out
            .line(&format!("{id} {}", render::phase_name(status.phase)))?;
    }
    Ok(EXIT_OK)
}

/// `solti rm`.
pub(crate) async fn rm(ctx: &mut Ctx, typed: &str) -> Result<u8> {
    let id = ctx.client.resolve(typed).await?;
    ctx.client.delete(&id).await?;
    if ctx.json() {
        ctx.out.json(&pb::DeleteTaskResponse {})?;
    } else {
        ctx.out.line(&format!("{id} deleted"))?;
    }
    Ok(EXIT_OK)
}

/// `solti wait`.
pub(crate) async fn wait(ctx: &mut Ctx, typed: &str) -> Result<u8> {
    let id = ctx.client.resolve(typed).await?;
    until_interrupted(&id, async {
        let task = wait_terminal(ctx, &id).await?;
        Ok(exit_code(ctx, &task))
    })
    .await
}

/// Polls the task until its phase is terminal (every 100 ms at first, then every second).
async fn wait_terminal(ctx: &mut Ctx, id: &str) -> Result<pb::TaskData> {
    let mut pause = Duration::from_millis(100);
    loop {
        let task = ctx.client.task(id).await?;
        if render::is_terminal_phase(task.status.as_ref().map_or(0, |s| s.phase)) {
            return Ok(task);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

/// The exit code for a finished task; says on stderr why when it is not 0.
fn exit_code(ctx: &Ctx, task: &pb::TaskData) -> u8 {
    let status = task.status.clone().unwrap_or_default();
    let id = task.metadata.as_ref().map_or("", |m| m.id.as_str());
    let code = outcome_code(status.phase, status.exit_code);
    if code != EXIT_OK && !ctx.json() {
        ctx.out.note(&format!(
            "task {id} {}: {}",
            render::phase_name(status.phase),
            status.error.as_deref().unwrap_or("no detail")
        ));
    }
    if ctx.json() {
        let _ = ctx.out.json(task);
    }
    code
}

/// The exit code for a terminal phase and the task's exit code: 0 for success, the task's
/// own code when it failed with one (1 when that does not fit 1..=255), 124 for a timeout,
/// 1 otherwise.
fn outcome_code(phase: i32, exit_code: Option<i32>) -> u8 {
    match (
        pb::TaskStatus::try_from(phase).unwrap_or_default(),
        exit_code,
    ) {
        (pb::TaskStatus::Succeeded, _) => EXIT_OK,
        (pb::TaskStatus::Timeout, _) => EXIT_TIMEOUT,
        (pb::TaskStatus::Canceled, _) => EXIT_FAILED,
        (_, Some(c)) => u8::try_from(c)
            .ok()
            .filter(|c| *c != 0)
            .unwrap_or(EXIT_FAILED),
        (_, None) => EXIT_FAILED,
    }
}

/// `solti health`.
pub(crate) async fn health(ctx: &mut Ctx, addr: &str) -> Result<u8> {
    let readiness = ctx.client.readiness().await?;
    let (code, state, detail) = match &readiness {
        Readiness::Ready(d) => (EXIT_OK, "ready", d.clone()),
        Readiness::NotReady(d) => (EXIT_FAILED, "not ready", d.clone()),
        Readiness::NoHealthEndpoint => (
            EXIT_OK,
            "up",
            "the task API answers; this agent has no health endpoint".to_owned(),
        ),
    };
    if ctx.json() {
        ctx.out.line(
            &serde_json::json!({"addr": addr, "status": state, "detail": detail}).to_string(),
        )?;
    } else {
        ctx.out.line(&format!("{addr}: {state} ({detail})"))?;
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_map_to_exit_codes() {
        let code = |p: pb::TaskStatus, c| outcome_code(p as i32, c);
        assert_eq!(code(pb::TaskStatus::Succeeded, Some(0)), 0);
        assert_eq!(code(pb::TaskStatus::Failed, Some(3)), 3);
        assert_eq!(code(pb::TaskStatus::Exhausted, Some(7)), 7);
        assert_eq!(code(pb::TaskStatus::Failed, None), 1);
        assert_eq!(code(pb::TaskStatus::Failed, Some(-1)), 1);
        assert_eq!(code(pb::TaskStatus::Failed, Some(300)), 1);
        assert_eq!(code(pb::TaskStatus::Failed, Some(0)), 1);
        assert_eq!(code(pb::TaskStatus::Timeout, None), 124);
        assert_eq!(code(pb::TaskStatus::Canceled, Some(0)), 1);
    }

    #[test]
    fn specs_are_read_whole_or_wrapped() {
        let dir = std::env::temp_dir().join(format!("solti-cli-spec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bare = dir.join("bare.json");
        std::fs::write(&bare, r#"{"slot":"a","timeoutMs":"5"}"#).unwrap();
        assert_eq!(read_spec(bare.to_str().unwrap()).unwrap().timeout_ms, 5);
        let wrapped = dir.join("wrapped.json");
        std::fs::write(&wrapped, r#"{"spec":{"slot":"b"}}"#).unwrap();
        assert_eq!(read_spec(wrapped.to_str().unwrap()).unwrap().slot, "b");
        let big = dir.join("big.json");
        std::fs::write(&big, vec![b' '; (MAX_SPEC + 1) as usize]).unwrap();
        assert!(
            read_spec(big.to_str().unwrap())
                .unwrap_err()
                .message
                .contains("over")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
