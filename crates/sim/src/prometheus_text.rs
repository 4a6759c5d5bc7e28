//! Reading figures out of Prometheus/OpenMetrics text. Pure.

/// Sum of every sample of the metric `name` (all label sets), whatever
/// registry prefix it was registered under; `None` when no sample of it
/// appears. `name` is the sample name with its suffix, e.g.
/// `topic_msg_recv_counts_total` also matches
/// `gossipsub_topic_msg_recv_counts_total`.
pub fn sum_samples(text: &str, name: &str) -> Option<f64> {
    sum_samples_labelled(text, name, "")
}

/// Like [`sum_samples`], counting only samples whose label set contains
/// `label` (such as `type="GetRecord"`).
pub fn sum_samples_labelled(text: &str, name: &str, label: &str) -> Option<f64> {
    let mut found = false;
    let mut sum = 0.0;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let sample = &line[..name_end];
        let matches = sample == name
            || sample
                .strip_suffix(name)
                .is_some_and(|prefix| prefix.ends_with('_'));
        if !matches {
            continue;
        }
        let rest = &line[name_end..];
        if !label.is_empty() && !rest.contains(label) {
            continue;
        }
        let value = if rest.starts_with('{') {
            rest.rsplit_once("} ").map(|(_, v)| v)
        } else {
            rest.strip_prefix(' ')
        };
        // A timestamp may follow the value.
        if let Some(v) = value.and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok()) {
            found = true;
            sum += v;
        }
    }
    found.then_some(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP gossipsub_topic_msg_recv_counts Number of gossip messages.
# TYPE gossipsub_topic_msg_recv_counts counter
gossipsub_topic_msg_recv_counts_total{hash="a"} 10
gossipsub_topic_msg_recv_counts_total{hash="b b} "} 5
gossipsub_topic_msg_recv_counts_unfiltered_total{hash="a"} 31
libp2p_bandwidth_bytes_total{protocols="/ip4/udp/quic-v1",direction="Inbound"} 1024
plain_gauge 2.5
xplain_gauge 7
libp2p_kad_query_result_num_requests_sum{type="GetRecord"} 12.0
libp2p_kad_query_result_num_requests_sum{type="Bootstrap"} 30.0
# EOF
"#;

    #[test]
    fn sums_label_sets_and_tells_names_apart() {
        assert_eq!(
            sum_samples(TEXT, "gossipsub_topic_msg_recv_counts_total"),
            Some(15.0)
        );
        assert_eq!(sum_samples(TEXT, "topic_msg_recv_counts_total"), Some(15.0));
        assert_eq!(
            sum_samples(TEXT, "topic_msg_recv_counts_unfiltered_total"),
            Some(31.0)
        );
        assert_eq!(sum_samples(TEXT, "plain_gauge"), Some(2.5));
        assert_eq!(sum_samples(TEXT, "missing_total"), None);
        let name = "kad_query_result_num_requests_sum";
        assert_eq!(sum_samples(TEXT, name), Some(42.0));
        assert_eq!(
            sum_samples_labelled(TEXT, name, r#"type="GetRecord""#),
            Some(12.0)
        );
        assert_eq!(
            sum_samples_labelled(TEXT, name, r#"type="PutRecord""#),
            None
        );
    }
}
