//! Operator (non-keyed) list state and how it is redistributed when the parallelism changes
//! (Flink's even-split and union redistribution).

/// How operator list state is handed to the subtasks of a new parallelism.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Redistribution {
    /// The elements of all subtasks are concatenated and split into contiguous, nearly equal
    /// parts, one per new subtask (Flink's `getListState`).
    EvenSplit,
    /// Every new subtask gets all elements of all subtasks (Flink's `getUnionListState`).
    Union,
}

/// Redistributes the per-subtask lists `states` to `parallelism` subtasks.
pub fn redistribute<T: Clone>(
    states: Vec<Vec<T>>,
    parallelism: usize,
    mode: Redistribution,
) -> Vec<Vec<T>> {
    let parallelism = parallelism.max(1);
    let all: Vec<T> = states.into_iter().flatten().collect();
    match mode {
        Redistribution::Union => vec![all; parallelism],
        Redistribution::EvenSplit => {
            let n = all.len();
            let mut out = Vec::with_capacity(parallelism);
            let mut it = all.into_iter();
            for i in 0..parallelism {
                let size = n / parallelism + usize::from(i < n % parallelism);
                out.push(it.by_ref().take(size).collect());
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_split_and_union() {
        let states = vec![vec![1, 2, 3], vec![4], vec![5, 6, 7]];
        let even = redistribute(states.clone(), 2, Redistribution::EvenSplit);
        assert_eq!(even, vec![vec![1, 2, 3, 4], vec![5, 6, 7]]);
        let even = redistribute(states.clone(), 5, Redistribution::EvenSplit);
        assert_eq!(
            even.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![2, 2, 1, 1, 1]
        );
        let union = redistribute(states, 2, Redistribution::Union);
        assert_eq!(union, vec![vec![1, 2, 3, 4, 5, 6, 7]; 2]);
    }
}
