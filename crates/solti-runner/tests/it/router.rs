use solti_model::{
    ContainerSpec, Labels, RunnerSelector, SelectorOperator, SelectorRequirement, SubprocessSpec,
    TaskKind, TaskSpec,
};
use solti_runner::{BuildContext, OutputPublisher, Runner, RunnerError, RunnerRouter};
use taskvisor::{TaskContext, TaskError, TaskFn, TaskRef};

struct Named(&'static str, fn(&TaskSpec) -> bool);

impl Runner for Named {
    fn name(&self) -> &str {
        self.0
    }
    fn supports(&self, spec: &TaskSpec) -> bool {
        (self.1)(spec)
    }
    fn build_task(&self, _spec: &TaskSpec, _ctx: &BuildContext) -> Result<TaskRef, RunnerError> {
        Ok(TaskFn::arc(|_ctx: TaskContext| async {
            Ok::<(), TaskError>(())
        }))
    }
}

fn subprocess() -> bool {
    true
}

fn is_sub(spec: &TaskSpec) -> bool {
    matches!(spec.kind(), TaskKind::Subprocess(_)) && subprocess()
}

fn spec() -> solti_model::TaskSpecBuilder {
    TaskSpec::builder(
        "s",
        TaskKind::Subprocess(SubprocessSpec::command("true", Vec::<String>::new())),
        1_000u64,
    )
}

#[test]
fn first_registered_match_wins() {
    let mut r = RunnerRouter::new();
    r.register(Named("a", is_sub)).unwrap();
    r.register(Named("b", is_sub)).unwrap();
    assert_eq!(r.pick(&spec().build().unwrap()).unwrap().name(), "a");
    assert_eq!(r.names().collect::<Vec<_>>(), ["a", "b"]);
}

#[test]
fn duplicate_and_invalid_names_are_refused() {
    let mut r = RunnerRouter::new();
    r.register(Named("a", is_sub)).unwrap();
    let err = r.register(Named("a", is_sub)).unwrap_err();
    assert!(matches!(err, RunnerError::DuplicateName(ref n) if n == "a"));
    assert_eq!(
        err.to_string(),
        "a runner named \"a\" is already registered"
    );
    assert!(matches!(
        r.register(Named("", is_sub)),
        Err(RunnerError::InvalidName(0))
    ));
}

#[test]
fn labels_and_selectors_filter_runners() {
    let mut r = RunnerRouter::new();
    r.register_with_labels(Named("cpu", is_sub), Labels::new().with("pool", "cpu"))
        .unwrap();
    r.register_with_labels(
        Named("gpu", is_sub),
        Labels::new().with("pool", "gpu").with("zone", "a"),
    )
    .unwrap();
    let by_label = spec().label("pool", "gpu").build().unwrap();
    assert_eq!(r.pick(&by_label).unwrap().name(), "gpu");

    let sel = |op, values: &[&str]| {
        spec()
            .runner_selector(
                RunnerSelector::new().with_expression(SelectorRequirement::new(
                    "zone",
                    op,
                    values.iter().copied(),
                )),
            )
            .build()
            .unwrap()
    };
    assert_eq!(
        r.pick(&sel(SelectorOperator::Exists, &[])).unwrap().name(),
        "gpu"
    );
    assert_eq!(
        r.pick(&sel(SelectorOperator::DoesNotExist, &[]))
            .unwrap()
            .name(),
        "cpu"
    );
    assert_eq!(
        r.pick(&sel(SelectorOperator::In, &["a"])).unwrap().name(),
        "gpu"
    );
    assert_eq!(
        r.pick(&sel(SelectorOperator::NotIn, &["a"]))
            .unwrap()
            .name(),
        "cpu"
    );

    // Labels and selector are ANDed: nothing has pool=cpu and zone=a.
    let none = spec()
        .label("pool", "cpu")
        .runner_selector(RunnerSelector::new().with_label("zone", "a"))
        .build()
        .unwrap();
    let err = r.pick(&none).map(|r| r.name().to_owned()).unwrap_err();
    assert!(matches!(err, RunnerError::NoRunner { kind: "subprocess" }));
}

#[test]
fn unsupported_kinds_and_embedded_are_rejected() {
    let mut r = RunnerRouter::new();
    r.register(Named("sub", is_sub)).unwrap();
    let wasm = TaskSpec::builder("w", TaskKind::Container(ContainerSpec::new("img")), 1u64)
        .build()
        .unwrap();
    let err = r.pick(&wasm).map(|r| r.name().to_owned()).unwrap_err();
    assert!(err.to_string().contains("container"), "{err}");
    let emb = TaskSpec::builder("e", TaskKind::Embedded, 1u64)
        .build()
        .unwrap();
    let err = r.pick(&emb).map(|r| r.name().to_owned()).unwrap_err();
    assert!(matches!(err, RunnerError::EmbeddedNeedsTask));
    assert!(err.to_string().contains("submit_with_task"));
}

#[test]
fn build_returns_the_runner_name() {
    let mut r = RunnerRouter::new();
    r.register(Named("sub", is_sub)).unwrap();
    let s = spec().build().unwrap();
    let ctx = r.context(OutputPublisher::discard(solti_model::TaskId::generate()));
    let (_task, name) = r.build(&s, &ctx).unwrap();
    assert_eq!(name, "sub");
}
