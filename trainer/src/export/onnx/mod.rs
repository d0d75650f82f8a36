// SPDX-License-Identifier: MIT OR Apache-2.0
//! odm's own ONNX writer: prost messages for the subset of onnx.proto in use, and a small graph builder.
//!
//! Written in Rust so that export needs no Python; the graphs it produces are checked by loading them in ONNX
//! Runtime in the plugin's and the end-to-end tests.

pub mod proto;

use prost::Message;
use proto::*;

/// ONNX IR version written (IR 8 pairs with opset 17-18; ONNX Runtime 1.32 reads it).
pub const IR_VERSION: i64 = 8;
/// Default-domain opset written.
pub const OPSET: i64 = 17;

/// A symbolic or fixed tensor dimension.
#[derive(Debug, Clone)]
pub enum Dim {
    Fixed(i64),
    Named(&'static str),
}

fn value_info(name: &str, dims: &[Dim]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Dim::Fixed(v) => DimensionValue::DimValue(*v),
                Dim::Named(p) => DimensionValue::DimParam((*p).to_owned()),
            }),
        })
        .collect();
    ValueInfoProto {
        name: name.to_owned(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor { elem_type: DATA_TYPE_FLOAT, shape: Some(TensorShapeProto { dim }) }),
        }),
    }
}

/// An attribute of a node.
pub enum Attr {
    Int(&'static str, i64),
    Float(&'static str, f32),
    Ints(&'static str, Vec<i64>),
}

impl Attr {
    fn proto(self) -> AttributeProto {
        let mut a = AttributeProto::default();
        match self {
            Attr::Int(n, v) => {
                a.name = n.into();
                a.i = v;
                a.r#type = attribute_type::INT;
            }
            Attr::Float(n, v) => {
                a.name = n.into();
                a.f = v;
                a.r#type = attribute_type::FLOAT;
            }
            Attr::Ints(n, v) => {
                a.name = n.into();
                a.ints = v;
                a.r#type = attribute_type::INTS;
            }
        }
        a
    }
}

/// Builds one float32 graph, node by node, with generated value names.
pub struct GraphBuilder {
    graph: GraphProto,
    counter: usize,
    /// Weights written as float16 ([`GraphBuilder::half`]).
    half: bool,
}

impl GraphBuilder {
    pub fn new(name: &str) -> GraphBuilder {
        GraphBuilder { graph: GraphProto { name: name.to_owned(), ..Default::default() }, counter: 0, half: false }
    }

    /// A graph whose [`GraphBuilder::weight`]s are float16 (rounded to nearest): the graph's nodes must then compute
    /// in float16 (cast the float32 input with [`Attr::Int`]`("to", DATA_TYPE_FLOAT16)`).
    pub fn half(name: &str) -> GraphBuilder {
        GraphBuilder { half: true, ..GraphBuilder::new(name) }
    }

    /// Declare a graph input; returns its name.
    pub fn input(&mut self, name: &str, dims: &[Dim]) -> String {
        self.graph.input.push(value_info(name, dims));
        name.to_owned()
    }

    /// Add a weight tensor (float32, or float16 in a [`GraphBuilder::half`] graph); returns its name.
    pub fn weight(&mut self, name: &str, dims: &[i64], values: &[f32]) -> String {
        debug_assert_eq!(dims.iter().product::<i64>() as usize, values.len());
        let (data_type, raw_data) = if self.half {
            (DATA_TYPE_FLOAT16, values.iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect())
        } else {
            (DATA_TYPE_FLOAT, values.iter().flat_map(|v| v.to_le_bytes()).collect())
        };
        self.graph.initializer.push(TensorProto { dims: dims.to_vec(), data_type, name: name.to_owned(), raw_data });
        name.to_owned()
    }

    /// Add a tensor of another element type from its little-endian bytes (int8, uint8, int32 for quantized
    /// models); returns its name.
    pub fn raw(&mut self, name: &str, dims: &[i64], data_type: i32, raw_data: Vec<u8>) -> String {
        self.graph.initializer.push(TensorProto { dims: dims.to_vec(), data_type, name: name.to_owned(), raw_data });
        name.to_owned()
    }

    /// Add a node with one output; returns the output's name (`out` if given, else a generated one).
    pub fn node(&mut self, op: &str, inputs: &[&str], attrs: Vec<Attr>, out: Option<&str>) -> String {
        self.counter += 1;
        let output = out.map(str::to_owned).unwrap_or_else(|| format!("{}_{}", op.to_lowercase(), self.counter));
        self.graph.node.push(NodeProto {
            input: inputs.iter().map(|s| (*s).to_owned()).collect(),
            output: vec![output.clone()],
            name: format!("{op}_{}", self.counter),
            op_type: op.to_owned(),
            attribute: attrs.into_iter().map(Attr::proto).collect(),
            domain: String::new(),
        });
        output
    }

    /// Declare a graph output.
    pub fn output(&mut self, name: &str, dims: &[Dim]) {
        self.graph.output.push(value_info(name, dims));
    }

    /// Serialise as an ONNX model (deterministic bytes for the same graph).
    pub fn finish(self, doc: &str) -> Vec<u8> {
        self.finish_with(doc, &[])
    }

    /// [`GraphBuilder::finish`] with metadata key-value pairs (read back by ONNX Runtime's model metadata).
    pub fn finish_with(self, doc: &str, metadata: &[(&str, &str)]) -> Vec<u8> {
        ModelProto {
            metadata_props: metadata
                .iter()
                .map(|(k, v)| proto::StringStringEntryProto { key: (*k).to_owned(), value: (*v).to_owned() })
                .collect(),
            ir_version: IR_VERSION,
            opset_import: vec![OperatorSetIdProto { domain: String::new(), version: OPSET }],
            producer_name: "odm-train".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            doc_string: doc.to_owned(),
            graph: Some(self.graph),
        }
        .encode_to_vec()
    }
}
