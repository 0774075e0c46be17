//! Projection push-down: a scan emits only the table columns the operators above it read.
//!
//! A `Calc` names the columns it reads; when its input is a scan, or a window TVF over a
//! scan, the scan's projection shrinks to those columns (plus the time attribute a window
//! TVF needs), and the Calc's input scope with it. So a generator builds, and a file
//! reader hands on, only what the query uses, as Flink's planner pushes projections into
//! `SupportsProjectionPushDown` sources. Other operators over a scan read every column and
//! keep the full projection.

use crate::plan::{Node, ScopeColumn};
use datafusion_expr::Expr;

/// Shrinks the projections of the scans in `node`'s tree to what is read.
pub(crate) fn prune_scans(node: &mut Node) {
    match node {
        Node::Scan { .. } => {}
        Node::Calc {
            input,
            input_scope,
            filter,
            columns,
        } => {
            let read = read_columns(
                input_scope,
                filter.iter().chain(columns.iter().map(|c| &c.1)),
            );
            if !prune_under_calc(input, input_scope, read) {
                prune_scans(input);
            }
        }
        Node::WindowTvf { input, .. }
        | Node::WindowAggregate { input, .. }
        | Node::Rank { input, .. }
        | Node::OverAggregate { input, .. }
        | Node::GroupAggregate { input, .. } => prune_scans(input),
        Node::Union { inputs } => inputs.iter_mut().for_each(prune_scans),
        Node::Join { left, right, .. } => {
            prune_scans(left);
            prune_scans(right);
        }
    }
}

/// Which columns of `scope` the expressions name.
fn read_columns<'a>(scope: &[ScopeColumn], exprs: impl Iterator<Item = &'a Expr>) -> Vec<bool> {
    let mut read = vec![false; scope.len()];
    for e in exprs {
        for c in e.column_refs() {
            for (i, s) in scope.iter().enumerate() {
                if s.matches(c) {
                    read[i] = true;
                }
            }
        }
    }
    read
}

/// Prunes the scan right under a Calc whose input columns are `scope` and of which it
/// reads `read`; false if the Calc's input is not a scan (or a window TVF over one).
fn prune_under_calc(input: &mut Node, scope: &mut Vec<ScopeColumn>, mut read: Vec<bool>) -> bool {
    match input {
        Node::Scan { table, projection } => {
            let keep = kept(projection.len(), table.watermark.is_some(), &read);
            apply(projection, scope, &keep);
            true
        }
        Node::WindowTvf {
            input,
            rowtime,
            partition_by,
            ..
        } => {
            let Node::Scan { table, projection } = input.as_mut() else {
                return false;
            };
            read[*rowtime] = true;
            for (i, c) in scope.iter().enumerate() {
                if partition_by.contains(&c.name) {
                    read[i] = true;
                }
            }
            // The scan's columns come first; the window's three columns stay.
            let scan_width = projection.len() + usize::from(table.watermark.is_some());
            let mut keep = kept(
                projection.len(),
                table.watermark.is_some(),
                &read[..scan_width],
            );
            *rowtime = keep[..*rowtime].iter().filter(|k| **k).count();
            keep.extend(std::iter::repeat_n(true, scope.len() - scan_width));
            apply(projection, scope, &keep);
            true
        }
        _ => false,
    }
}

/// Which of a scan's columns stay: those read, the per-row watermark (always emitted by a
/// table with a watermark), and at least one column so a batch still counts its rows.
fn kept(table_columns: usize, watermark: bool, read: &[bool]) -> Vec<bool> {
    let mut keep: Vec<bool> = read.to_vec();
    if watermark {
        keep[table_columns] = true;
    }
    if !keep.iter().any(|k| *k) {
        keep[0] = true;
    }
    keep
}

/// Drops the columns not in `keep` from a scan's projection (its first entries) and from
/// the scope over it.
fn apply(projection: &mut Vec<usize>, scope: &mut Vec<ScopeColumn>, keep: &[bool]) {
    let mut i = 0;
    projection.retain(|_| {
        i += 1;
        keep[i - 1]
    });
    let mut i = 0;
    scope.retain(|_| {
        i += 1;
        keep[i - 1]
    });
}
