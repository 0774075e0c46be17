//! Which operators are chained into one task, following Flink's rules, and that chaining
//! never changes results.

use weir::prelude::*;

/// The chains of the job graph, as lists of operator names.
fn chains(env: &StreamExecutionEnvironment) -> Vec<Vec<String>> {
    env.job_graph("test")
        .unwrap()
        .vertices
        .iter()
        .map(|v| v.operators.iter().map(|o| o.name.clone()).collect())
        .collect()
}

fn env(p: i64) -> StreamExecutionEnvironment {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(p);
    env
}

#[test]
fn forward_operators_with_equal_parallelism_form_one_chain() {
    let env = env(2);
    env.from_sequence(1, 10)
        .map(|x: i64| x + 1)
        .filter(|x: &i64| x % 2 == 0)
        .discard();
    assert_eq!(
        chains(&env),
        vec![vec![
            "Source: Sequence Source",
            "Map",
            "Filter",
            "Sink: Discarding Sink"
        ]]
    );
    let g = env.job_graph("test").unwrap();
    assert_eq!(
        g.vertices[0].name,
        "Source: Sequence Source -> Map -> Filter -> Sink: Discarding Sink"
    );
    assert!(g.edges.is_empty());
}

#[test]
fn key_by_rebalance_and_parallelism_changes_break_chains() {
    let env = env(2);
    env.from_sequence(1, 10)
        .map(|x: i64| (x % 3, x))
        .key_by(|t: &(i64, i64)| t.0)
        .reduce(|a, b| (a.0, a.1 + b.1))
        .map(|t: (i64, i64)| t.1)
        .rebalance()
        .filter(|_: &i64| true)
        .map(|x: i64| x)
        .set_parallelism(3)
        .discard();
    assert_eq!(
        chains(&env),
        vec![
            vec!["Source: Sequence Source", "Map"],
            vec!["Keyed Reduce", "Map"],
            vec!["Filter"],
            vec!["Map"],
            vec!["Sink: Discarding Sink"],
        ]
    );
    let g = env.job_graph("test").unwrap();
    let kinds: Vec<_> = g
        .edges
        .iter()
        .map(|e| e.partitioner.ship_strategy())
        .collect();
    assert_eq!(kinds, vec!["HASH", "REBALANCE", "REBALANCE", "REBALANCE"]);
}

#[test]
fn chaining_controls_are_honoured() {
    let env = env(1);
    env.from_sequence(1, 10)
        .map(|x: i64| x)
        .name("a")
        .map(|x: i64| x)
        .name("b")
        .disable_chaining()
        .map(|x: i64| x)
        .name("c")
        .map(|x: i64| x)
        .name("d")
        .start_new_chain()
        .map(|x: i64| x)
        .name("e")
        .slot_sharing_group("other")
        .discard();
    assert_eq!(
        chains(&env),
        vec![
            vec!["Source: Sequence Source", "a"],
            vec!["b"],
            vec!["c"],
            vec!["d"],
            vec!["e", "Sink: Discarding Sink"],
        ]
    );
    // Two slot sharing groups of parallelism 1 need two slots.
    assert_eq!(env.job_graph("t").unwrap().required_slots(), 2);

    let env = self::env(1);
    env.disable_operator_chaining();
    env.from_sequence(1, 10).map(|x: i64| x).discard();
    assert_eq!(chains(&env).len(), 3);
}

#[test]
fn unions_and_two_input_operators_start_chains_and_branches_chain() {
    let env = env(1);
    let a = env.from_sequence(1, 10);
    let b = env.from_sequence(11, 20);
    let u = a.union(&[&b]).map(|x: i64| x * 2);
    let c = u.connect(&env.from_collection(vec!["x".to_string()]));
    let co = c.co_map(|x: i64| x.to_string(), |s: String| s);
    co.discard();
    u.filter(|x: &i64| *x > 0).discard();
    let ch = chains(&env);
    assert!(
        ch.contains(&vec![
            "Map".to_string(),
            "Filter".to_string(),
            "Sink: Discarding Sink".to_string()
        ]),
        "{ch:?}"
    );
    assert!(
        ch.contains(&vec![
            "Co-Map".to_string(),
            "Sink: Discarding Sink".to_string()
        ]),
        "{ch:?}"
    );
}

#[test]
fn explicit_forward_with_different_parallelism_is_rejected() {
    let env = env(2);
    env.from_sequence(1, 10)
        .forward()
        .map(|x: i64| x)
        .set_parallelism(3)
        .discard();
    let err = env.job_graph("t").unwrap_err().to_string();
    assert!(
        err.contains("forward partitioning does not allow a change of parallelism"),
        "{err}"
    );
}

#[test]
fn execution_plan_has_flinks_shape() {
    let env = env(2);
    env.from_collection(vec![1i64, 2, 3])
        .map(|x: i64| x)
        .key_by(|x: &i64| *x)
        .sum(|x: &mut i64| x)
        .print();
    let plan: serde_json::Value = serde_json::from_str(&env.execution_plan().unwrap()).unwrap();
    let nodes = plan["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 4);
    assert_eq!(nodes[0]["pact"], "Data Source");
    assert_eq!(nodes[0]["parallelism"], 1);
    assert_eq!(nodes[1]["predecessors"][0]["ship_strategy"], "REBALANCE");
    assert_eq!(nodes[2]["type"], "Keyed Aggregation");
    assert_eq!(nodes[2]["predecessors"][0]["ship_strategy"], "HASH");
    assert_eq!(nodes[3]["pact"], "Data Sink");
    assert_eq!(nodes[3]["predecessors"][0]["ship_strategy"], "FORWARD");
}

/// Runs a branching, keyed, side-output job and returns its sorted results.
fn branching_job(chaining: bool, parallelism: i64) -> (Vec<(i64, i64)>, Vec<i64>) {
    let env = env(parallelism);
    if !chaining {
        env.disable_operator_chaining();
    }
    let odd = OutputTag::<i64>::new("odd");
    #[derive(Clone)]
    struct Split(OutputTag<i64>);
    impl ProcessFunction<i64, i64> for Split {
        fn process_element(
            &mut self,
            v: i64,
            ctx: &mut ProcessContext<'_>,
            out: &mut Collector<'_, i64>,
        ) -> Result<(), UserError> {
            if v % 2 == 1 {
                ctx.output(&self.0, v);
            } else {
                out.collect(v);
            }
            Ok(())
        }
    }
    let split = env
        .from_sequence(1, 5000)
        .map(|x: i64| x * 3)
        .process(Split(odd.clone()));
    let sums = split
        .map(|x: i64| (x % 7, x))
        .key_by(|t: &(i64, i64)| t.0)
        .reduce(|a, b| (a.0, a.1 + b.1))
        .collect_values();
    let odds = split
        .get_side_output(&odd)
        .filter(|x: &i64| x % 5 == 0)
        .collect_values();
    env.execute("branching").unwrap();
    // Intermediate rolling values depend on arrival order; the final (largest) sum per key
    // does not.
    let mut finals = std::collections::BTreeMap::new();
    for (k, v) in sums.take() {
        let e = finals.entry(k).or_insert(0);
        *e = v.max(*e);
    }
    let s: Vec<(i64, i64)> = finals.into_iter().collect();
    let mut o = odds.take();
    o.sort();
    (s, o)
}

#[test]
fn results_do_not_depend_on_chaining_or_parallelism() {
    let reference = branching_job(true, 1);
    assert_eq!(
        reference.1.len(),
        (1..=5000)
            .filter(|x| (x * 3) % 2 == 1 && (x * 3) % 5 == 0)
            .count()
    );
    for p in [1, 3] {
        for chaining in [true, false] {
            assert_eq!(
                branching_job(chaining, p),
                reference,
                "chaining {chaining} parallelism {p}"
            );
        }
    }
}

/// (operator name, uid) of every operator, in vertex and chain order.
fn uids(env: &StreamExecutionEnvironment) -> Vec<(String, String)> {
    env.job_graph("test")
        .unwrap()
        .vertices
        .iter()
        .flat_map(|v| v.operators.iter().map(|o| (o.name.clone(), o.uid.clone())))
        .collect()
}

fn keyed_pipeline(env: &StreamExecutionEnvironment, map_after_reduce: bool, uid: Option<&str>) {
    let reduced = env
        .from_sequence(1, 10)
        .map(|x: i64| (x % 3, x))
        .key_by(|t: &(i64, i64)| t.0)
        .reduce(|a, b| (a.0, a.1 + b.1));
    let reduced = match uid {
        Some(u) => reduced.uid(u),
        None => reduced,
    };
    if map_after_reduce {
        reduced.map(|t: (i64, i64)| t).discard();
    } else {
        reduced.discard();
    }
}

fn uid_of(uids: &[(String, String)], name: &str) -> String {
    uids.iter()
        .find(|(n, _)| n == name)
        .map(|(_, u)| u.clone())
        .unwrap_or_else(|| panic!("no operator {name} in {uids:?}"))
}

#[test]
fn default_uids_are_a_hash_of_the_topology() {
    let (a, b) = (env(2), env(2));
    keyed_pipeline(&a, false, None);
    keyed_pipeline(&b, false, None);
    let ua = uids(&a);
    assert_eq!(ua, uids(&b), "the same program gives the same uids");
    assert_eq!(
        a.job_graph("test").unwrap().fingerprint(),
        b.job_graph("test").unwrap().fingerprint()
    );
    assert!(ua
        .iter()
        .all(|(_, u)| u.len() == 32 && u.chars().all(|c| c.is_ascii_hexdigit())));
    let mut distinct: Vec<&String> = ua.iter().map(|(_, u)| u).collect();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), ua.len(), "uids are distinct: {ua:?}");

    // An operator added after the keyed reduce leaves the uids up to it unchanged (its state
    // still restores), but not the graph's fingerprint.
    let c = env(2);
    keyed_pipeline(&c, true, None);
    let uc = uids(&c);
    for name in ["Source: Sequence Source", "Map", "Keyed Reduce"] {
        assert_eq!(uid_of(&ua, name), uid_of(&uc, name), "{name}");
    }
    assert_ne!(
        a.job_graph("test").unwrap().fingerprint(),
        c.job_graph("test").unwrap().fingerprint()
    );

    // A change upstream of the reduce (here a rebalance in front of its map) changes it.
    let d = env(2);
    let reduced = d
        .from_sequence(1, 10)
        .rebalance()
        .map(|x: i64| (x % 3, x))
        .key_by(|t: &(i64, i64)| t.0)
        .reduce(|a, b| (a.0, a.1 + b.1));
    reduced.discard();
    assert_ne!(
        uid_of(&ua, "Keyed Reduce"),
        uid_of(&uids(&d), "Keyed Reduce")
    );

    // A uid set by the user is kept as it is.
    let e = env(2);
    keyed_pipeline(&e, false, Some("my-reduce"));
    assert_eq!(uid_of(&uids(&e), "Keyed Reduce"), "my-reduce");
}
