//! Which node dials which: random degree-D graphs, lines and rings. Pure and
//! deterministic for a given random source.

use std::collections::BTreeSet;

use rand::{seq::SliceRandom, Rng};
use serde::Serialize;

use crate::config::TopologyKind;

/// The dials that make a network: `(dialler, listener)` pairs, each pair of
/// nodes at most once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Topology {
    /// Number of nodes.
    pub nodes: usize,
    /// Dials, in the order they are made.
    pub edges: Vec<(usize, usize)>,
    /// Dials added after the random choice to join separate components.
    pub bridges: usize,
}

impl Topology {
    /// Builds a topology of `kind` over `nodes` nodes.
    ///
    /// Random: every node dials `degree` distinct others it is not yet
    /// connected to (fewer if the network is too small), so each node ends
    /// with at least `degree` neighbours; separate components, if any, are
    /// then joined by extra dials (counted in `bridges`). Line: node i dials
    /// i+1. Ring: a line whose last node dials the first.
    pub fn generate(kind: TopologyKind, nodes: usize, degree: usize, rng: &mut impl Rng) -> Self {
        let mut topology = Topology {
            nodes,
            edges: Vec::new(),
            bridges: 0,
        };
        match kind {
            TopologyKind::Line | TopologyKind::Ring => {
                for i in 1..nodes {
                    topology.edges.push((i - 1, i));
                }
                if kind == TopologyKind::Ring && nodes > 2 {
                    topology.edges.push((nodes - 1, 0));
                }
            }
            TopologyKind::Random => {
                let mut adjacent: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); nodes];
                for i in 0..nodes {
                    let mut candidates: Vec<usize> = (0..nodes)
                        .filter(|&j| j != i && !adjacent[i].contains(&j))
                        .collect();
                    candidates.shuffle(rng);
                    // Dial `degree` others of our own choice, not counting
                    // those that dialled us: "each dialling D random others".
                    for &j in candidates.iter().take(degree) {
                        adjacent[i].insert(j);
                        adjacent[j].insert(i);
                        topology.edges.push((i, j));
                    }
                }
                topology.bridge_components(rng);
            }
        }
        topology
    }

    /// Neighbours of every node (both directions of each dial), sorted.
    pub fn neighbours(&self) -> Vec<Vec<usize>> {
        let mut adjacent: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); self.nodes];
        for &(a, b) in &self.edges {
            adjacent[a].insert(b);
            adjacent[b].insert(a);
        }
        adjacent
            .into_iter()
            .map(|s| s.into_iter().collect())
            .collect()
    }

    /// The connected components, each a sorted list of nodes.
    pub fn components(&self) -> Vec<Vec<usize>> {
        let neighbours = self.neighbours();
        let mut seen = vec![false; self.nodes];
        let mut components = Vec::new();
        for start in 0..self.nodes {
            if seen[start] {
                continue;
            }
            seen[start] = true;
            let mut stack = vec![start];
            let mut component = Vec::new();
            while let Some(n) = stack.pop() {
                component.push(n);
                for &m in &neighbours[n] {
                    if !seen[m] {
                        seen[m] = true;
                        stack.push(m);
                    }
                }
            }
            component.sort_unstable();
            components.push(component);
        }
        components
    }

    /// Longest shortest path between two nodes (hops), for connected graphs.
    pub fn diameter(&self) -> usize {
        let neighbours = self.neighbours();
        let mut diameter = 0;
        for start in 0..self.nodes {
            let mut dist = vec![usize::MAX; self.nodes];
            dist[start] = 0;
            let mut queue = std::collections::VecDeque::from([start]);
            while let Some(n) = queue.pop_front() {
                for &m in &neighbours[n] {
                    if dist[m] == usize::MAX {
                        dist[m] = dist[n] + 1;
                        queue.push_back(m);
                    }
                }
            }
            diameter = diameter.max(
                dist.into_iter()
                    .filter(|&d| d != usize::MAX)
                    .max()
                    .unwrap_or(0),
            );
        }
        diameter
    }

    fn bridge_components(&mut self, rng: &mut impl Rng) {
        let components = self.components();
        for pair in components.windows(2) {
            let a = pair[0][rng.gen_range(0..pair[0].len())];
            let b = pair[1][rng.gen_range(0..pair[1].len())];
            self.edges.push((a, b));
            self.bridges += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::{rngs::StdRng, SeedableRng};

    use super::*;

    fn rng() -> StdRng {
        StdRng::seed_from_u64(7)
    }

    fn assert_simple(t: &Topology) {
        let mut pairs = BTreeSet::new();
        for &(a, b) in &t.edges {
            assert_ne!(a, b, "no self dials");
            assert!(a < t.nodes && b < t.nodes);
            assert!(
                pairs.insert((a.min(b), a.max(b))),
                "pair {a}-{b} dialled twice"
            );
        }
    }

    #[test]
    fn random_gives_every_node_at_least_degree_neighbours_and_is_connected() {
        for (n, d) in [(10, 3), (100, 6), (1000, 4), (5, 1)] {
            let t = Topology::generate(TopologyKind::Random, n, d, &mut rng());
            assert_simple(&t);
            assert!(t.neighbours().iter().all(|nb| nb.len() >= d));
            assert_eq!(t.components().len(), 1, "n={n} d={d}");
            assert!(t.edges.len() <= n * d + t.bridges);
        }
    }

    #[test]
    fn random_with_degree_beyond_the_network_is_complete() {
        let t = Topology::generate(TopologyKind::Random, 21, 20, &mut rng());
        assert_simple(&t);
        assert_eq!(t.edges.len(), 21 * 20 / 2);
        assert!(t.neighbours().iter().all(|nb| nb.len() == 20));
        assert_eq!(t.diameter(), 1);
    }

    #[test]
    fn same_seed_same_topology() {
        let a = Topology::generate(TopologyKind::Random, 50, 4, &mut rng());
        let b = Topology::generate(TopologyKind::Random, 50, 4, &mut rng());
        assert_eq!(a, b);
    }

    #[test]
    fn line_and_ring() {
        let line = Topology::generate(TopologyKind::Line, 5, 9, &mut rng());
        assert_eq!(line.edges, vec![(0, 1), (1, 2), (2, 3), (3, 4)]);
        assert_eq!(line.diameter(), 4);
        let ring = Topology::generate(TopologyKind::Ring, 5, 9, &mut rng());
        assert_eq!(ring.edges.len(), 5);
        assert_eq!(ring.diameter(), 2);
        assert!(ring.neighbours().iter().all(|nb| nb.len() == 2));
        let pair = Topology::generate(TopologyKind::Ring, 2, 1, &mut rng());
        assert_eq!(pair.edges, vec![(0, 1)], "a ring of two is one dial");
    }

    #[test]
    fn separate_components_are_bridged() {
        let mut t = Topology {
            nodes: 6,
            edges: vec![(0, 1), (2, 3), (4, 5)],
            bridges: 0,
        };
        t.bridge_components(&mut rng());
        assert_eq!(t.bridges, 2);
        assert_eq!(t.components().len(), 1);
    }
}
