use super::*;

fn decode(body: &str) -> Result<InferRequest, InferError> {
    decode_request(body.as_bytes(), None)
}

fn err(body: &str) -> String {
    decode(body).unwrap_err().to_string()
}

#[test]
fn flat_and_nested_data_decode_to_the_same_tensor() {
    let flat = decode(
        r#"{"inputs":[{"name":"x","shape":[2,3],"datatype":"FP32","data":[1,2,3,4,5,6.5]}]}"#,
    )
    .unwrap();
    let nested = decode(
        r#"{"inputs":[{"data":[[1,2,3],[4,5,6.5]],"datatype":"FP32","shape":[2,3],"name":"x"}]}"#,
    )
    .unwrap();
    assert_eq!(flat, nested);
    assert_eq!(
        flat.inputs[0].data,
        TensorData::Fp32(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.5])
    );
    assert_eq!(flat.inputs[0].shape, vec![2, 3]);
}

#[test]
fn every_datatype_decodes_from_json() {
    let cases: &[(&str, &str, TensorData)] = &[
        ("BOOL", "[true,false]", TensorData::Bool(vec![true, false])),
        ("UINT8", "[0,255]", TensorData::Uint8(vec![0, 255])),
        ("UINT16", "[0,65535]", TensorData::Uint16(vec![0, 65535])),
        (
            "UINT32",
            "[0,4294967295]",
            TensorData::Uint32(vec![0, u32::MAX]),
        ),
        (
            "UINT64",
            "[0,18446744073709551615]",
            TensorData::Uint64(vec![0, u64::MAX]),
        ),
        ("INT8", "[-128,127]", TensorData::Int8(vec![-128, 127])),
        (
            "INT16",
            "[-32768,32767]",
            TensorData::Int16(vec![i16::MIN, i16::MAX]),
        ),
        (
            "INT32",
            "[-2147483648,2.0]",
            TensorData::Int32(vec![i32::MIN, 2]),
        ),
        (
            "INT64",
            "[-9223372036854775808,9223372036854775807]",
            TensorData::Int64(vec![i64::MIN, i64::MAX]),
        ),
        ("FP16", "[1.0,-2]", TensorData::Fp16(vec![0x3c00, 0xc000])),
        ("BF16", "[1.0,-2]", TensorData::Bf16(vec![0x3f80, 0xc000])),
        ("FP32", "[0.1,1e30]", TensorData::Fp32(vec![0.1, 1e30])),
        ("FP64", "[0.1,1e300]", TensorData::Fp64(vec![0.1, 1e300])),
        (
            "BYTES",
            r#"["abc","é"]"#,
            TensorData::Bytes(vec![b"abc".to_vec(), "é".as_bytes().to_vec()]),
        ),
    ];
    for (dt, data, expected) in cases {
        let body =
            format!(r#"{{"inputs":[{{"name":"x","shape":[2],"datatype":"{dt}","data":{data}}}]}}"#);
        let req = decode(&body).unwrap_or_else(|e| panic!("{dt}: {e}"));
        assert_eq!(&req.inputs[0].data, expected, "{dt}");
    }
}

#[test]
fn out_of_range_and_wrong_kind_elements_name_the_input_and_element() {
    let cases = [
        (
            "UINT8",
            "[1,256]",
            "element 1 is 256, which is not a valid UINT8",
        ),
        ("INT8", "[-129,0]", "element 0 is -129"),
        (
            "INT64",
            "[1.5,0]",
            "element 0 is 1.5, which is not a valid INT64",
        ),
        ("BOOL", "[1,0]", "not a valid BOOL"),
        (
            "FP32",
            r#"["a",1]"#,
            r#"element 0 is "a", which is not a valid FP32"#,
        ),
        ("BYTES", "[1,2]", "not a valid BYTES"),
        ("FP32", "{\"a\":1}", "expected FP32 elements"),
    ];
    for (dt, data, expected) in cases {
        let body = format!(
            r#"{{"inputs":[{{"name":"feat","shape":[2],"datatype":"{dt}","data":{data}}}]}}"#
        );
        let msg = err(&body);
        assert!(msg.starts_with("inputs[0] ('feat'): data: "), "{dt}: {msg}");
        assert!(msg.contains(expected), "{dt}: {msg}");
    }
}

#[test]
fn malformed_requests_name_the_field() {
    let cases = [
        ("not json", "invalid inference request"),
        (
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32"}]}"#,
            "missing data",
        ),
        (
            r#"{"inputs":[{"name":"x","shape":[-1],"datatype":"FP32","data":[1]}]}"#,
            "inputs[0].shape[0]",
        ),
        (
            r#"{"inputs":[{"name":"x","shape":[2],"datatype":"FLOAT","data":[1,2]}]}"#,
            "unknown datatype 'FLOAT'",
        ),
        (
            r#"{"inputs":[{"name":"x","shape":[3],"datatype":"FP32","data":[1,2]}]}"#,
            "shape [3] needs 3 elements but 2",
        ),
        (
            r#"{"inputs":[{"name":"x","datatype":"FP32","data":[1]}]}"#,
            "missing field `shape`",
        ),
        (
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1],"extra":1}]}"#,
            "inputs[0].extra: unknown field `extra`",
        ),
        (r#"{"input":[]}"#, "unknown field `input`"),
        (
            r#"{"inputs":[],"parameters":{"a":[1]}}"#,
            "parameters.a: a parameter must be",
        ),
        (
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1],"parameters":{"binary_data_size":4}}]}"#,
            "has both data",
        ),
    ];
    for (body, expected) in cases {
        let msg = err(body);
        assert!(msg.contains(expected), "{body}\n  => {msg}");
    }
}

#[test]
fn ids_parameters_and_requested_outputs_are_kept() {
    let req = decode(
        r#"{"id":"42","parameters":{"content_type":"np","binary_data_output":true},
            "inputs":[{"name":"x","shape":[1],"datatype":"INT64","data":[7],"parameters":{"content_type":"np"}}],
            "outputs":[{"name":"predict_proba","parameters":{"binary_data":false}}]}"#,
    )
    .unwrap();
    assert_eq!(req.id.as_deref(), Some("42"));
    assert_eq!(req.parameters["content_type"], "np");
    assert_eq!(req.inputs[0].parameters["content_type"], "np");
    assert_eq!(req.outputs[0].name, "predict_proba");
    assert!(!wants_binary(
        &req.parameters,
        &req.outputs,
        "predict_proba"
    ));
    assert!(wants_binary(&req.parameters, &req.outputs, "predict"));
    // KServe's client repeats the model's name in the body.
    let req = decode(r#"{"model_name":"m","model_version":"1","inputs":[]}"#).unwrap();
    assert!(req.inputs.is_empty());
    // Numeric ids are accepted and echoed as strings.
    let req = decode(r#"{"id":7,"inputs":[]}"#).unwrap();
    assert_eq!(req.id.as_deref(), Some("7"));
}

fn binary_body(json: &str, blobs: &[&[u8]]) -> (Vec<u8>, usize) {
    let mut body = json.as_bytes().to_vec();
    for b in blobs {
        body.extend_from_slice(b);
    }
    (body, json.len())
}

#[test]
fn binary_inputs_take_their_bytes_in_order() {
    let a: Vec<u8> = [1.5f32, -2.0]
        .iter()
        .flat_map(|f| f.to_le_bytes())
        .collect();
    let mut s = Vec::new();
    for e in [&b"hi"[..], b""] {
        s.extend_from_slice(&(e.len() as u32).to_le_bytes());
        s.extend_from_slice(e);
    }
    let json = format!(
        r#"{{"inputs":[{{"name":"a","shape":[1,2],"datatype":"FP32","parameters":{{"binary_data_size":{}}}}},
            {{"name":"j","shape":[1],"datatype":"INT32","data":[3]}},
            {{"name":"s","shape":[2],"datatype":"BYTES","parameters":{{"binary_data_size":{}}}}}]}}"#,
        a.len(),
        s.len()
    );
    let (body, n) = binary_body(&json, &[&a, &s]);
    let req = decode_request(&body, Some(n)).unwrap();
    assert_eq!(req.inputs[0].data, TensorData::Fp32(vec![1.5, -2.0]));
    assert!(
        req.inputs[0].parameters.is_empty(),
        "binary_data_size is consumed"
    );
    assert_eq!(req.inputs[1].data, TensorData::Int32(vec![3]));
    assert_eq!(
        req.inputs[2].data,
        TensorData::Bytes(vec![b"hi".to_vec(), vec![]])
    );
}

#[test]
fn binary_size_mismatches_are_400s() {
    let json = r#"{"inputs":[{"name":"a","shape":[2],"datatype":"FP32","parameters":{"binary_data_size":8}}]}"#;
    let (body, n) = binary_body(json, &[&[0u8; 4]]);
    assert!(
        decode_request(&body, Some(n))
            .unwrap_err()
            .to_string()
            .contains("only 4 bytes")
    );
    let (body, n) = binary_body(json, &[&[0u8; 12]]);
    assert!(
        decode_request(&body, Some(n))
            .unwrap_err()
            .to_string()
            .contains("no input claims them")
    );
    let json = r#"{"inputs":[{"name":"a","shape":[3],"datatype":"FP32","parameters":{"binary_data_size":8}}]}"#;
    let (body, n) = binary_body(json, &[&[0u8; 8]]);
    assert!(
        decode_request(&body, Some(n))
            .unwrap_err()
            .to_string()
            .contains("expected 12")
    );
    assert!(
        decode_request(b"{}", Some(10))
            .unwrap_err()
            .to_string()
            .contains("only 2 bytes")
    );
    let json = r#"{"inputs":[{"name":"b","shape":[1],"datatype":"BOOL","parameters":{"binary_data_size":1}}]}"#;
    let (body, n) = binary_body(json, &[&[2u8]]);
    assert!(
        decode_request(&body, Some(n))
            .unwrap_err()
            .to_string()
            .contains("not 0 or 1")
    );
}

#[test]
fn raw_encoding_roundtrips_every_datatype() {
    let cases = [
        TensorData::Bool(vec![true, false]),
        TensorData::Uint8(vec![1, 255]),
        TensorData::Uint16(vec![1, 65535]),
        TensorData::Uint32(vec![1, u32::MAX]),
        TensorData::Uint64(vec![1, u64::MAX]),
        TensorData::Int8(vec![-1, 127]),
        TensorData::Int16(vec![-1, 300]),
        TensorData::Int32(vec![-1, 70000]),
        TensorData::Int64(vec![-1, i64::MIN]),
        TensorData::Fp16(vec![0x3c00, 0x7bff]),
        TensorData::Bf16(vec![0x3f80, 0x4000]),
        TensorData::Fp32(vec![0.1, f32::MAX]),
        TensorData::Fp64(vec![0.1, f64::MIN_POSITIVE]),
        TensorData::Bytes(vec![b"x".to_vec(), vec![0, 1, 2]]),
    ];
    for data in cases {
        let mut raw = Vec::new();
        encode_raw(&data, &mut raw);
        assert_eq!(raw.len(), raw_size(&data));
        assert_eq!(decode_raw(&raw, data.datatype(), data.len()).unwrap(), data);
    }
}

fn response(outputs: Vec<Tensor>) -> InferResponse {
    InferResponse {
        model_name: "m".into(),
        id: Some("1".into()),
        outputs,
        ..Default::default()
    }
}

#[test]
fn json_responses_have_the_protocols_shape() {
    let r = response(vec![
        Tensor::new("predict", vec![2], TensorData::Int64(vec![1, 0])).unwrap(),
        Tensor::new("p", vec![1, 2], TensorData::Fp16(vec![0x3c00, 0x3800])).unwrap(),
        Tensor::new("s", vec![1], TensorData::Bytes(vec![b"ok".to_vec()])).unwrap(),
    ]);
    let enc = encode_response(&r, &|_| false);
    assert_eq!(enc.json_len, None);
    let v: serde_json::Value = serde_json::from_slice(&enc.body).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"model_name":"m","id":"1","outputs":[
            {"name":"predict","datatype":"INT64","shape":[2],"data":[1,0]},
            {"name":"p","datatype":"FP16","shape":[1,2],"data":[1.0,0.5]},
            {"name":"s","datatype":"BYTES","shape":[1],"data":["ok"]}]})
    );
}

#[test]
fn binary_outputs_follow_the_json_header() {
    let r = response(vec![
        Tensor::new("a", vec![2], TensorData::Fp32(vec![1.0, 2.0])).unwrap(),
        Tensor::new("b", vec![1], TensorData::Int64(vec![5])).unwrap(),
    ]);
    let enc = encode_response(&r, &|name| name == "a");
    let n = enc.json_len.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&enc.body[..n]).unwrap();
    assert_eq!(v["outputs"][0]["parameters"]["binary_data_size"], 8);
    assert!(v["outputs"][0].get("data").is_none());
    assert_eq!(v["outputs"][1]["data"], serde_json::json!([5]));
    assert_eq!(
        decode_raw(&enc.body[n..], DataType::Fp32, 2).unwrap(),
        TensorData::Fp32(vec![1.0, 2.0])
    );
}

#[test]
fn garbage_never_panics() {
    use proptest::prelude::*;
    let seed = br#"{"id":"1","inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[[1,2],[3,4]]},{"name":"b","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":6}}],"outputs":[{"name":"y"}]}"#;
    let mut full = seed.to_vec();
    full.extend_from_slice(&[2, 0, 0, 0, b'h', b'i']);
    proptest!(ProptestConfig::with_cases(2000), |(cut in 0..full.len(), pos in 0..full.len(), byte: u8, header in proptest::option::of(0..full.len() + 4))| {
        let mut body = full.clone();
        body[pos] = byte;
        body.truncate(cut.max(1));
        let _ = decode_request(&body, header);
    });
}
