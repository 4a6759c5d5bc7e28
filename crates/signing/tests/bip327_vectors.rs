//! The official BIP-327 test vectors (`tests/vectors/`, from the bips
//! repository) against the `musig2` crate as this crate uses it — KeySort
//! through our own key type, KeyAgg, NonceGen, NonceAgg, partial signing and
//! verification, tweaking, and signature aggregation. Error cases must be
//! refused for the reason the vector gives.

use musig2::{
    secp::{MaybeScalar, Point, Scalar},
    AggNonce, CompactSignature, KeyAggContext, PartialSignature, PubNonce, SecNonce,
};
use serde_json::Value;

use conclave_signing::SignerKey;

fn vectors(name: &str) -> Value {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

fn hexes(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn indices(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_u64().unwrap() as usize)
        .collect()
}

fn bytes(hex_text: &str) -> Vec<u8> {
    hex::decode(hex_text).unwrap()
}

fn point(hex_text: &str) -> Point {
    SignerKey::from_hex(hex_text).unwrap().point()
}

/// A key aggregation context over the chosen keys with the chosen tweaks.
fn key_agg(pubkeys: &[String], case: &Value, tweaks: &[String]) -> KeyAggContext {
    let ctx = KeyAggContext::new(
        indices(&case["key_indices"])
            .iter()
            .map(|&i| point(&pubkeys[i])),
    )
    .unwrap();
    let flags: Vec<bool> = case["is_xonly"]
        .as_array()
        .map(|a| a.iter().map(|b| b.as_bool().unwrap()).collect())
        .unwrap_or_default();
    let chosen = case.get("tweak_indices").map(indices).unwrap_or_default();
    chosen.iter().zip(flags).fold(ctx, |ctx, (&t, xonly)| {
        let tweak = MaybeScalar::from_hex(&tweaks[t]).unwrap();
        ctx.with_tweak(tweak, xonly).unwrap()
    })
}

#[test]
fn key_sort() {
    let v = vectors("key_sort_vectors.json");
    let mut keys: Vec<SignerKey> = hexes(&v["pubkeys"])
        .iter()
        .map(|k| SignerKey::from_hex(k).unwrap())
        .collect();
    keys.sort();
    let expected: Vec<SignerKey> = hexes(&v["sorted_pubkeys"])
        .iter()
        .map(|k| SignerKey::from_hex(k).unwrap())
        .collect();
    assert_eq!(keys, expected);
}

#[test]
fn key_agg_valid_and_error_cases() {
    let v = vectors("key_agg_vectors.json");
    let pubkeys = hexes(&v["pubkeys"]);
    let tweaks = hexes(&v["tweaks"]);
    for case in v["valid_test_cases"].as_array().unwrap() {
        let agg: Point = key_agg(&pubkeys, case, &tweaks).aggregated_pubkey();
        assert_eq!(
            hex::encode_upper(agg.serialize_xonly()),
            case["expected"].as_str().unwrap()
        );
    }
    for case in v["error_test_cases"].as_array().unwrap() {
        let keys = indices(&case["key_indices"]);
        let error = &case["error"];
        if error["type"] == "invalid_contribution" {
            // The named signer's key is refused; the others parse.
            let culprit = error["signer"].as_u64().unwrap() as usize;
            for (signer, &i) in keys.iter().enumerate() {
                assert_eq!(
                    SignerKey::from_hex(&pubkeys[i]).is_err(),
                    signer == culprit,
                    "{}",
                    case["comment"]
                );
            }
        } else {
            // A tweak out of range, or one that reaches infinity.
            let ctx = KeyAggContext::new(keys.iter().map(|&i| point(&pubkeys[i]))).unwrap();
            let t = indices(&case["tweak_indices"])[0];
            let xonly = case["is_xonly"][0].as_bool().unwrap();
            let refused = match MaybeScalar::from_hex(&tweaks[t]) {
                Err(_) => true,
                Ok(tweak) => ctx.with_tweak(tweak, xonly).is_err(),
            };
            assert!(refused, "{}", case["comment"]);
        }
    }
}

#[test]
fn nonce_gen() {
    let v = vectors("nonce_gen_vectors.json");
    for case in v["test_cases"].as_array().unwrap() {
        let seed: [u8; 32] = bytes(case["rand_"].as_str().unwrap()).try_into().unwrap();
        let pk = point(case["pk"].as_str().unwrap());
        let mut builder = match case["sk"].as_str() {
            Some(sk) => {
                let sk = Scalar::from_hex(sk).unwrap();
                assert_eq!(sk.base_point_mul(), pk);
                SecNonce::build_with_seckey(seed, sk)
            }
            None => SecNonce::build_with_pubkey(seed, pk),
        };
        if let Some(aggpk) = case["aggpk"].as_str() {
            let x: [u8; 32] = bytes(aggpk).try_into().unwrap();
            builder = builder.with_aggregated_pubkey(Point::lift_x(x).unwrap());
        }
        let msg = case["msg"].as_str().map(bytes);
        if let Some(msg) = &msg {
            builder = builder.with_message(msg);
        }
        let extra = case["extra_in"].as_str().map(bytes);
        if let Some(extra) = &extra {
            builder = builder.with_extra_input(extra);
        }
        let secnonce = builder.build();
        assert_eq!(
            hex::encode_upper(secnonce.serialize()),
            case["expected_secnonce"].as_str().unwrap()
        );
        assert_eq!(
            hex::encode_upper(secnonce.public_nonce().serialize()),
            case["expected_pubnonce"].as_str().unwrap()
        );
    }
}

#[test]
fn nonce_agg() {
    let v = vectors("nonce_agg_vectors.json");
    let pnonces = hexes(&v["pnonces"]);
    for case in v["valid_test_cases"].as_array().unwrap() {
        let nonces: Vec<PubNonce> = indices(&case["pnonce_indices"])
            .iter()
            .map(|&i| PubNonce::from_hex(&pnonces[i]).unwrap())
            .collect();
        assert_eq!(
            hex::encode_upper(AggNonce::sum(&nonces).serialize()),
            case["expected"].as_str().unwrap()
        );
    }
    for case in v["error_test_cases"].as_array().unwrap() {
        let culprit = case["error"]["signer"].as_u64().unwrap() as usize;
        for (signer, &i) in indices(&case["pnonce_indices"]).iter().enumerate() {
            assert_eq!(
                PubNonce::from_hex(&pnonces[i]).is_err(),
                signer == culprit,
                "{}",
                case["comment"]
            );
        }
    }
}

#[test]
fn sign_and_verify_partial_signatures() {
    let v = vectors("sign_verify_vectors.json");
    let sk = Scalar::from_hex(v["sk"].as_str().unwrap()).unwrap();
    let pubkeys = hexes(&v["pubkeys"]);
    let secnonces = hexes(&v["secnonces"]);
    let pnonces = hexes(&v["pnonces"]);
    let aggnonces = hexes(&v["aggnonces"]);
    let msgs: Vec<Vec<u8>> = hexes(&v["msgs"]).iter().map(|m| bytes(m)).collect();
    let secnonce = SecNonce::from_hex(&secnonces[0]).unwrap();
    let no_tweaks: Vec<String> = Vec::new();

    for case in v["valid_test_cases"].as_array().unwrap() {
        let ctx = key_agg(&pubkeys, case, &no_tweaks);
        let aggnonce =
            AggNonce::from_hex(&aggnonces[case["aggnonce_index"].as_u64().unwrap() as usize])
                .unwrap();
        let nonces: Vec<PubNonce> = indices(&case["nonce_indices"])
            .iter()
            .map(|&i| PubNonce::from_hex(&pnonces[i]).unwrap())
            .collect();
        assert_eq!(AggNonce::sum(&nonces), aggnonce);
        let msg = &msgs[case["msg_index"].as_u64().unwrap() as usize];
        let partial: PartialSignature =
            musig2::sign_partial(&ctx, sk, secnonce.clone(), &aggnonce, msg).unwrap();
        assert_eq!(
            hex::encode_upper(partial.serialize()),
            case["expected"].as_str().unwrap()
        );
        let signer = case["signer_index"].as_u64().unwrap() as usize;
        musig2::verify_partial(
            &ctx,
            partial,
            &aggnonce,
            sk.base_point_mul(),
            &nonces[signer],
            msg,
        )
        .expect("a valid partial signature verifies");
    }

    for case in v["sign_error_test_cases"].as_array().unwrap() {
        let keys = indices(&case["key_indices"]);
        let parsed: Vec<Option<Point>> = keys
            .iter()
            .map(|&i| SignerKey::from_hex(&pubkeys[i]).ok().map(|k| k.point()))
            .collect();
        let aggnonce =
            AggNonce::from_hex(&aggnonces[case["aggnonce_index"].as_u64().unwrap() as usize]);
        let secnonce =
            SecNonce::from_hex(&secnonces[case["secnonce_index"].as_u64().unwrap() as usize]);
        let refused = match (
            parsed.iter().copied().collect::<Option<Vec<Point>>>(),
            aggnonce,
            secnonce,
        ) {
            (Some(points), Ok(aggnonce), Ok(secnonce)) => {
                let ctx = KeyAggContext::new(points).unwrap();
                musig2::sign_partial::<PartialSignature>(&ctx, sk, secnonce, &aggnonce, &msgs[0])
                    .is_err()
            }
            _ => true,
        };
        assert!(refused, "{}", case["comment"]);
        if case["error"]["contrib"] == "pubkey" {
            let culprit = case["error"]["signer"].as_u64().unwrap() as usize;
            assert!(parsed[culprit].is_none(), "{}", case["comment"]);
        }
    }

    for case in v["verify_fail_test_cases"].as_array().unwrap() {
        let ctx = key_agg(&pubkeys, case, &no_tweaks);
        let nonces: Vec<PubNonce> = indices(&case["nonce_indices"])
            .iter()
            .map(|&i| PubNonce::from_hex(&pnonces[i]).unwrap())
            .collect();
        let aggnonce = AggNonce::sum(&nonces);
        let signer = case["signer_index"].as_u64().unwrap() as usize;
        let signer_key = point(&pubkeys[indices(&case["key_indices"])[signer]]);
        let msg = &msgs[case["msg_index"].as_u64().unwrap() as usize];
        let refused = match PartialSignature::from_hex(case["sig"].as_str().unwrap()) {
            Err(_) => true,
            Ok(sig) => {
                musig2::verify_partial(&ctx, sig, &aggnonce, signer_key, &nonces[signer], msg)
                    .is_err()
            }
        };
        assert!(refused, "{}", case["comment"]);
    }

    for case in v["verify_error_test_cases"].as_array().unwrap() {
        let culprit = case["error"]["signer"].as_u64().unwrap() as usize;
        let refused = if case["error"]["contrib"] == "pubnonce" {
            PubNonce::from_hex(&pnonces[indices(&case["nonce_indices"])[culprit]]).is_err()
        } else {
            SignerKey::from_hex(&pubkeys[indices(&case["key_indices"])[culprit]]).is_err()
        };
        assert!(refused, "{}", case["comment"]);
    }
}

#[test]
fn tweaked_partial_signatures() {
    let v = vectors("tweak_vectors.json");
    let sk = Scalar::from_hex(v["sk"].as_str().unwrap()).unwrap();
    let pubkeys = hexes(&v["pubkeys"]);
    let tweaks = hexes(&v["tweaks"]);
    let pnonces = hexes(&v["pnonces"]);
    let secnonce = SecNonce::from_hex(v["secnonce"].as_str().unwrap()).unwrap();
    let aggnonce = AggNonce::from_hex(v["aggnonce"].as_str().unwrap()).unwrap();
    let msg = bytes(v["msg"].as_str().unwrap());
    for case in v["valid_test_cases"].as_array().unwrap() {
        let ctx = key_agg(&pubkeys, case, &tweaks);
        let nonces: Vec<PubNonce> = indices(&case["nonce_indices"])
            .iter()
            .map(|&i| PubNonce::from_hex(&pnonces[i]).unwrap())
            .collect();
        assert_eq!(AggNonce::sum(&nonces), aggnonce);
        let partial: PartialSignature =
            musig2::sign_partial(&ctx, sk, secnonce.clone(), &aggnonce, &msg).unwrap();
        assert_eq!(
            hex::encode_upper(partial.serialize()),
            case["expected"].as_str().unwrap(),
            "{}",
            case["comment"]
        );
        let signer = case["signer_index"].as_u64().unwrap() as usize;
        musig2::verify_partial(
            &ctx,
            partial,
            &aggnonce,
            sk.base_point_mul(),
            &nonces[signer],
            &msg,
        )
        .unwrap();
    }
    for case in v["error_test_cases"].as_array().unwrap() {
        let t = indices(&case["tweak_indices"])[0];
        assert!(
            MaybeScalar::from_hex(&tweaks[t]).is_err(),
            "{}",
            case["comment"]
        );
    }
}

#[test]
fn signature_aggregation() {
    let v = vectors("sig_agg_vectors.json");
    let pubkeys = hexes(&v["pubkeys"]);
    let pnonces = hexes(&v["pnonces"]);
    let tweaks = hexes(&v["tweaks"]);
    let psigs = hexes(&v["psigs"]);
    let msg = bytes(v["msg"].as_str().unwrap());
    for case in v["valid_test_cases"].as_array().unwrap() {
        let ctx = key_agg(&pubkeys, case, &tweaks);
        let aggnonce = AggNonce::from_hex(case["aggnonce"].as_str().unwrap()).unwrap();
        let nonces: Vec<PubNonce> = indices(&case["nonce_indices"])
            .iter()
            .map(|&i| PubNonce::from_hex(&pnonces[i]).unwrap())
            .collect();
        assert_eq!(AggNonce::sum(&nonces), aggnonce);
        let partials: Vec<PartialSignature> = indices(&case["psig_indices"])
            .iter()
            .map(|&i| PartialSignature::from_hex(&psigs[i]).unwrap())
            .collect();
        let signature: CompactSignature =
            musig2::aggregate_partial_signatures(&ctx, &aggnonce, partials, &msg).unwrap();
        assert_eq!(
            hex::encode_upper(signature.serialize()),
            case["expected"].as_str().unwrap()
        );
        let key: Point = ctx.aggregated_pubkey();
        musig2::verify_single(key, signature, &msg).expect("BIP-340 verifies");
    }
    for case in v["error_test_cases"].as_array().unwrap() {
        let culprit = case["error"]["signer"].as_u64().unwrap() as usize;
        for (signer, &i) in indices(&case["psig_indices"]).iter().enumerate() {
            assert_eq!(
                PartialSignature::from_hex(&psigs[i]).is_err(),
                signer == culprit,
                "{}",
                case["comment"]
            );
        }
    }
}
