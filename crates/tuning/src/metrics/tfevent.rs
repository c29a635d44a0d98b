//! TensorFlow event files (`*tfevents*`), read without TensorFlow.
//!
//! An event file is a sequence of TFRecords (length, masked CRC-32C of the
//! length, data, masked CRC-32C of the data) whose data are `Event`
//! protocol buffers. Only the few fields that carry scalars are decoded, by
//! hand: `Event{wall_time=1, step=2, summary=5}`, `Summary{value=1}`,
//! `Summary.Value{tag=1, simple_value=2, tensor=8}` and
//! `TensorProto{dtype=1, tensor_shape=2, tensor_content=4, float_val=5,
//! double_val=6, int_val=7, int64_val=10}`. TF1 writes scalars as
//! `simple_value`; TF2's `tf.summary.scalar` writes rank-0 tensors.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use oxflow_core::Timestamp;

use super::crc32c::masked;
use super::{MetricLog, MetricsError};

/// One scalar found in an event file.
#[derive(Debug, Clone, PartialEq)]
pub struct EventScalar {
    /// `Event.wall_time`: seconds since the epoch.
    pub wall_time: f64,
    /// `Event.step`.
    pub step: i64,
    /// `Summary.Value.tag`.
    pub tag: String,
    /// The value as text: floats in their shortest round-trip form for
    /// their own width (an f32 `0.1` reads `0.1`), integers as integers.
    pub value: String,
}

/// The scalars of one event file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EventFile {
    /// In record order.
    pub scalars: Vec<EventScalar>,
    /// The last record was incomplete: the writer is still writing it.
    pub truncated: bool,
}

/// Reads every scalar of an event file. A damaged record (a checksum that
/// does not match) is an error naming the file and byte offset; an
/// incomplete last record is not, since the trial may still be writing it.
pub fn read_event_file(path: &Path) -> Result<EventFile, MetricsError> {
    let data = std::fs::read(path).map_err(|e| MetricsError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    parse_event_file(&data).map_err(|(offset, message)| MetricsError::Corrupt {
        path: path.display().to_string(),
        offset,
        message,
    })
}

/// Katib's `TensorFlowEvent` collector: every `*tfevents*` file under `dir`
/// (recursively, in path order), each scalar whose tag matches a metric name
/// becoming a log of that metric.
///
/// A name without `/` matches that tag in any file. A name `test/accuracy`
/// matches tag `accuracy` in files whose directory ends with the path
/// components `test` (Katib compares the path as a string suffix and the tag
/// as a prefix; Oxflow compares whole components and the whole tag, so that
/// `accuracy` does not also collect `accuracy_top5`). A missing directory
/// holds no metrics yet. A damaged record anywhere is an error.
pub fn read_event_dir(dir: &Path, metric_names: &[String]) -> Result<Vec<MetricLog>, MetricsError> {
    EventDirTail::new(dir, metric_names).poll()
}

/// [`read_event_dir`] for a directory that is still being written: each
/// [`EventDirTail::poll`] returns only the logs of records completed since
/// the previous one, reading each file from where it stopped.
#[derive(Debug, Clone)]
pub struct EventDirTail {
    dir: PathBuf,
    metric_names: Vec<String>,
    /// Bytes of complete records already read, per file.
    offsets: BTreeMap<PathBuf, u64>,
}

impl EventDirTail {
    /// A tail over `dir` for `metric_names`; nothing is read yet.
    pub fn new(dir: &Path, metric_names: &[String]) -> Self {
        Self {
            dir: dir.to_path_buf(),
            metric_names: metric_names.to_vec(),
            offsets: BTreeMap::new(),
        }
    }

    /// Logs from the records completed since the last call (all of them on
    /// the first call), files in path order, records in file order.
    pub fn poll(&mut self) -> Result<Vec<MetricLog>, MetricsError> {
        let mut files = Vec::new();
        collect_event_files(&self.dir, &mut files)?;
        files.sort();
        let mut logs = Vec::new();
        for file in files {
            let offset = self.offsets.get(&file).copied().unwrap_or(0);
            let io = |e: std::io::Error| MetricsError::Io {
                path: file.display().to_string(),
                message: e.to_string(),
            };
            let mut f = std::fs::File::open(&file).map_err(io)?;
            f.seek(SeekFrom::Start(offset)).map_err(io)?;
            let mut data = Vec::new();
            f.read_to_end(&mut data).map_err(io)?;
            let mut scalars = Vec::new();
            let (consumed, _truncated) =
                parse_records(&data, &mut scalars).map_err(|(at, message)| {
                    MetricsError::Corrupt {
                        path: file.display().to_string(),
                        offset: offset + at,
                        message,
                    }
                })?;
            let parent = file.parent().unwrap_or(Path::new(""));
            for s in scalars {
                for m in &self.metric_names {
                    let matches = match m.rsplit_once('/') {
                        Some((d, tag)) => tag == s.tag && parent.ends_with(d),
                        None => *m == s.tag,
                    };
                    if matches {
                        logs.push(MetricLog {
                            time: Some(Timestamp((s.wall_time * 1000.0).round() as i64)),
                            name: m.clone(),
                            value: s.value.clone(),
                        });
                    }
                }
            }
            self.offsets.insert(file, offset + consumed as u64);
        }
        Ok(logs)
    }
}

fn collect_event_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), MetricsError> {
    let io = |e: std::io::Error| MetricsError::Io {
        path: dir.display().to_string(),
        message: e.to_string(),
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io)?;
        let path = entry.path();
        let kind = entry.file_type().map_err(io)?;
        if kind.is_dir() {
            collect_event_files(&path, out)?;
        } else if entry.file_name().to_string_lossy().contains("tfevents") {
            out.push(path);
        }
    }
    Ok(())
}

/// Parses TFRecord framing and the events inside; `Err((offset, message))`.
fn parse_event_file(data: &[u8]) -> Result<EventFile, (u64, String)> {
    let mut out = EventFile::default();
    let (_, truncated) = parse_records(data, &mut out.scalars)?;
    out.truncated = truncated;
    Ok(out)
}

/// Appends the scalars of every complete record; returns the bytes of
/// complete records and whether an incomplete one follows them.
fn parse_records(data: &[u8], out: &mut Vec<EventScalar>) -> Result<(usize, bool), (u64, String)> {
    let mut pos = 0usize;
    while pos < data.len() {
        let rest = &data[pos..];
        if rest.len() < 12 {
            return Ok((pos, true));
        }
        let len_bytes = &rest[..8];
        let len_crc = u32::from_le_bytes([rest[8], rest[9], rest[10], rest[11]]);
        if masked(len_bytes) != len_crc {
            return Err((pos as u64, "record length checksum mismatch".to_owned()));
        }
        let len = u64::from_le_bytes(len_bytes.try_into().unwrap_or_default());
        let Some(end) = usize::try_from(len).ok().and_then(|l| l.checked_add(16)) else {
            return Err((pos as u64, format!("record length {len} is too large")));
        };
        if rest.len() < end {
            return Ok((pos, true));
        }
        let record = &rest[12..end - 4];
        let data_crc =
            u32::from_le_bytes([rest[end - 4], rest[end - 3], rest[end - 2], rest[end - 1]]);
        if masked(record) != data_crc {
            return Err((pos as u64, "record data checksum mismatch".to_owned()));
        }
        decode_event(record, out)
            .map_err(|m| (pos as u64, format!("record is not a TensorFlow Event: {m}")))?;
        pos += end;
    }
    Ok((pos, false))
}

/// A protobuf field value by wire type.
enum Field<'a> {
    Varint(u64),
    Fixed64([u8; 8]),
    Bytes(&'a [u8]),
    Fixed32([u8; 4]),
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or("truncated varint")?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint longer than 10 bytes".to_owned())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or("truncated field")?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// The next `(field number, value)`, or `None` at the end.
    fn next(&mut self) -> Result<Option<(u64, Field<'a>)>, String> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = match key & 7 {
            0 => Field::Varint(self.varint()?),
            1 => Field::Fixed64(self.take(8)?.try_into().unwrap_or_default()),
            2 => {
                let n = usize::try_from(self.varint()?).map_err(|_| "length too large")?;
                Field::Bytes(self.take(n)?)
            }
            5 => Field::Fixed32(self.take(4)?.try_into().unwrap_or_default()),
            w => return Err(format!("unsupported wire type {w}")),
        };
        Ok(Some((key >> 3, field)))
    }
}

fn decode_event(buf: &[u8], out: &mut Vec<EventScalar>) -> Result<(), String> {
    let mut r = Reader::new(buf);
    let mut wall_time = 0.0;
    let mut step = 0i64;
    let mut summaries = Vec::new();
    while let Some((n, f)) = r.next()? {
        match (n, f) {
            (1, Field::Fixed64(b)) => wall_time = f64::from_le_bytes(b),
            (2, Field::Varint(v)) => step = v as i64,
            (5, Field::Bytes(b)) => summaries.push(b),
            _ => {}
        }
    }
    for summary in summaries {
        let mut r = Reader::new(summary);
        while let Some((n, f)) = r.next()? {
            if let (1, Field::Bytes(value)) = (n, f)
                && let Some((tag, value)) = decode_value(value)?
            {
                out.push(EventScalar {
                    wall_time,
                    step,
                    tag,
                    value,
                });
            }
        }
    }
    Ok(())
}

/// A `Summary.Value` that holds a scalar: `(tag, value text)`.
fn decode_value(buf: &[u8]) -> Result<Option<(String, String)>, String> {
    let mut r = Reader::new(buf);
    let mut tag = String::new();
    let mut value = None;
    while let Some((n, f)) = r.next()? {
        match (n, f) {
            (1, Field::Bytes(b)) => tag = String::from_utf8_lossy(b).into_owned(),
            (2, Field::Fixed32(b)) => value = Some(format!("{:?}", f32::from_le_bytes(b))),
            (8, Field::Bytes(b)) => value = scalar_tensor(b)?,
            _ => {}
        }
    }
    Ok(value.map(|v| (tag, v)))
}

const DT_FLOAT: u64 = 1;
const DT_DOUBLE: u64 = 2;
const DT_INT32: u64 = 3;
const DT_INT64: u64 = 9;

/// The value of a `TensorProto` with exactly one element of a numeric type.
fn scalar_tensor(buf: &[u8]) -> Result<Option<String>, String> {
    let mut r = Reader::new(buf);
    let mut dtype = 0;
    let mut elements: u64 = 1;
    let mut content: &[u8] = &[];
    let (mut floats, mut doubles, mut ints) = (Vec::new(), Vec::new(), Vec::new());
    while let Some((n, f)) = r.next()? {
        match (n, f) {
            (1, Field::Varint(v)) => dtype = v,
            (2, Field::Bytes(shape)) => elements = shape_elements(shape)?,
            (4, Field::Bytes(b)) => content = b,
            (5, Field::Fixed32(b)) => floats.push(f32::from_le_bytes(b)),
            (5, Field::Bytes(b)) => floats.extend(
                b.chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            ),
            (6, Field::Fixed64(b)) => doubles.push(f64::from_le_bytes(b)),
            (6, Field::Bytes(b)) => doubles.extend(
                b.chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().unwrap_or_default())),
            ),
            // int_val (int32) and int64_val, plain or packed.
            (7 | 10, Field::Varint(v)) => ints.push(v as i64),
            (7 | 10, Field::Bytes(b)) => {
                let mut p = Reader::new(b);
                while p.pos < b.len() {
                    ints.push(p.varint()? as i64);
                }
            }
            _ => {}
        }
    }
    if elements != 1 {
        return Ok(None);
    }
    let from_content = |width: usize| content.get(..width);
    let text = match dtype {
        DT_FLOAT => from_content(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .or(floats.first().copied())
            .map(|v| format!("{v:?}")),
        DT_DOUBLE => from_content(8)
            .map(|b| f64::from_le_bytes(b.try_into().unwrap_or_default()))
            .or(doubles.first().copied())
            .map(|v| format!("{v:?}")),
        DT_INT32 => from_content(4)
            .map(|b| i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])))
            // int_val is int32 on the wire: a negative value is sign-extended.
            .or(ints.first().map(|v| i64::from(*v as i32)))
            .map(|v| v.to_string()),
        DT_INT64 => from_content(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap_or_default()))
            .or(ints.first().copied())
            .map(|v| v.to_string()),
        _ => None,
    };
    Ok(text)
}

/// Number of elements of a `TensorShapeProto{dim=2 {size=1}}` (1 for rank 0).
fn shape_elements(buf: &[u8]) -> Result<u64, String> {
    let mut r = Reader::new(buf);
    let mut n: u64 = 1;
    while let Some((field, f)) = r.next()? {
        if let (2, Field::Bytes(dim)) = (field, f) {
            let mut d = Reader::new(dim);
            let mut size = 0i64;
            while let Some((k, v)) = d.next()? {
                if let (1, Field::Varint(s)) = (k, v) {
                    size = s as i64;
                }
            }
            n = n.saturating_mul(u64::try_from(size).unwrap_or(u64::MAX));
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn bytes_field(n: u64, b: &[u8], out: &mut Vec<u8>) {
        varint(n << 3 | 2, out);
        varint(b.len() as u64, out);
        out.extend_from_slice(b);
    }

    fn event(wall_time: f64, step: i64, tag: &str, value: f32) -> Vec<u8> {
        let mut v = Vec::new();
        bytes_field(1, tag.as_bytes(), &mut v);
        varint(2 << 3 | 5, &mut v);
        v.extend_from_slice(&value.to_le_bytes());
        let mut summary = Vec::new();
        bytes_field(1, &v, &mut summary);
        let mut e = Vec::new();
        varint(1 << 3 | 1, &mut e);
        e.extend_from_slice(&wall_time.to_le_bytes());
        varint(2 << 3, &mut e);
        varint(step as u64, &mut e);
        bytes_field(5, &summary, &mut e);
        e
    }

    fn record(data: &[u8]) -> Vec<u8> {
        let mut r = Vec::new();
        let len = (data.len() as u64).to_le_bytes();
        r.extend_from_slice(&len);
        r.extend_from_slice(&masked(&len).to_le_bytes());
        r.extend_from_slice(data);
        r.extend_from_slice(&masked(data).to_le_bytes());
        r
    }

    #[test]
    fn reads_simple_values() {
        let mut file = record(&event(1.5, 0, "loss", 0.5));
        file.extend(record(&event(2.0, 1, "loss", 0.1)));
        let f = parse_event_file(&file).unwrap();
        assert!(!f.truncated);
        let got: Vec<_> = f
            .scalars
            .iter()
            .map(|s| (s.step, s.tag.as_str(), s.value.as_str(), s.wall_time))
            .collect();
        assert_eq!(got, [(0, "loss", "0.5", 1.5), (1, "loss", "0.1", 2.0)]);
    }

    #[test]
    fn truncated_last_record_is_tolerated() {
        let mut file = record(&event(1.0, 0, "loss", 0.5));
        let second = record(&event(2.0, 1, "loss", 0.25));
        for cut in [1, 11, 12, second.len() - 1] {
            let mut f = file.clone();
            f.extend_from_slice(&second[..cut]);
            let parsed = parse_event_file(&f).unwrap();
            assert!(parsed.truncated, "cut at {cut}");
            assert_eq!(parsed.scalars.len(), 1);
        }
        file.extend(second);
        assert_eq!(parse_event_file(&file).unwrap().scalars.len(), 2);
    }

    #[test]
    fn corrupt_records_are_reported_with_their_offset() {
        let first = record(&event(1.0, 0, "loss", 0.5));
        let mut file = first.clone();
        file.extend(record(&event(2.0, 1, "loss", 0.25)));
        // Flip a byte of the second record's data.
        let mut bad = file.clone();
        let at = first.len() + 20;
        bad[at] ^= 0xff;
        let (offset, msg) = parse_event_file(&bad).unwrap_err();
        assert_eq!(offset, first.len() as u64);
        assert!(msg.contains("data checksum"), "{msg}");
        // Flip a byte of the second record's length.
        let mut bad = file.clone();
        bad[first.len()] ^= 0x01;
        let (offset, msg) = parse_event_file(&bad).unwrap_err();
        assert_eq!(offset, first.len() as u64);
        assert!(msg.contains("length checksum"), "{msg}");
        // Valid framing around data that is not an Event.
        let junk = record(&[0x0f, 0xff]);
        assert!(
            parse_event_file(&junk)
                .unwrap_err()
                .1
                .contains("not a TensorFlow Event")
        );
    }

    #[test]
    fn scalar_tensors_of_each_type() {
        let tensor = |dtype: u64, build: &dyn Fn(&mut Vec<u8>)| {
            let mut t = Vec::new();
            varint(1 << 3, &mut t);
            varint(dtype, &mut t);
            bytes_field(2, &[], &mut t);
            build(&mut t);
            scalar_tensor(&t).unwrap()
        };
        assert_eq!(
            tensor(DT_FLOAT, &|t| bytes_field(4, &0.25f32.to_le_bytes(), t)),
            Some("0.25".into())
        );
        assert_eq!(
            tensor(DT_FLOAT, &|t| bytes_field(5, &0.75f32.to_le_bytes(), t)),
            Some("0.75".into())
        );
        assert_eq!(
            tensor(DT_FLOAT, &|t| {
                varint(5 << 3 | 5, t);
                t.extend_from_slice(&1.5f32.to_le_bytes());
            }),
            Some("1.5".into())
        );
        assert_eq!(
            tensor(DT_DOUBLE, &|t| bytes_field(4, &0.1f64.to_le_bytes(), t)),
            Some("0.1".into())
        );
        assert_eq!(
            tensor(DT_DOUBLE, &|t| bytes_field(6, &2.5f64.to_le_bytes(), t)),
            Some("2.5".into())
        );
        assert_eq!(
            tensor(DT_INT32, &|t| {
                varint(7 << 3, t);
                varint((-3i64) as u64, t);
            }),
            Some("-3".into())
        );
        assert_eq!(
            tensor(DT_INT64, &|t| bytes_field(4, &42i64.to_le_bytes(), t)),
            Some("42".into())
        );
        // Not a scalar: two elements.
        let mut t = Vec::new();
        varint(1 << 3, &mut t);
        varint(DT_FLOAT, &mut t);
        let mut dim = Vec::new();
        varint(1 << 3, &mut dim);
        varint(2, &mut dim);
        let mut shape = Vec::new();
        bytes_field(2, &dim, &mut shape);
        bytes_field(2, &shape, &mut t);
        assert_eq!(scalar_tensor(&t).unwrap(), None);
        // A string tensor is not a metric.
        assert_eq!(tensor(7, &|_| {}), None);
    }

    #[test]
    fn directory_naming_rules() {
        let dir = tempfile::tempdir().unwrap();
        let write = |sub: &str, name: &str, events: &[(&str, f32)]| {
            let d = dir.path().join(sub);
            std::fs::create_dir_all(&d).unwrap();
            let mut data = Vec::new();
            for (i, (tag, v)) in events.iter().enumerate() {
                data.extend(record(&event(100.0 + i as f64, i as i64, tag, *v)));
            }
            std::fs::write(d.join(name), data).unwrap();
        };
        write(
            "train",
            "events.out.tfevents.1.host",
            &[("accuracy", 0.5), ("loss", 1.0)],
        );
        write(
            "test",
            "events.out.tfevents.2.host",
            &[("accuracy", 0.75), ("accuracy_top5", 0.9)],
        );
        write("mytest", "events.out.tfevents.3.host", &[("accuracy", 0.1)]);
        write("test", "notes.txt", &[("accuracy", 0.2)]);
        let names: Vec<String> = ["test/accuracy", "loss", "accuracy"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let logs = read_event_dir(dir.path(), &names).unwrap();
        let got: Vec<_> = logs
            .iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("accuracy", "0.1"),
                ("test/accuracy", "0.75"),
                ("accuracy", "0.75"),
                ("accuracy", "0.5"),
                ("loss", "1.0"),
            ]
        );
        assert_eq!(logs[1].time, Some(Timestamp(100_000)));
        assert!(
            read_event_dir(&dir.path().join("missing"), &names)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn tail_reads_only_new_complete_records() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["loss".to_owned()];
        let mut tail = EventDirTail::new(dir.path(), &names);
        assert!(tail.poll().unwrap().is_empty());
        let file = dir.path().join("run/events.out.tfevents.1");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        let first = record(&event(1.0, 0, "loss", 0.5));
        let second = record(&event(2.0, 1, "loss", 0.25));
        let mut data = first.clone();
        data.extend_from_slice(&second[..5]);
        std::fs::write(&file, &data).unwrap();
        let values = |logs: Vec<MetricLog>| logs.into_iter().map(|l| l.value).collect::<Vec<_>>();
        assert_eq!(values(tail.poll().unwrap()), ["0.5"]);
        assert!(tail.poll().unwrap().is_empty());
        data.extend_from_slice(&second[5..]);
        std::fs::write(&file, &data).unwrap();
        assert_eq!(values(tail.poll().unwrap()), ["0.25"]);
        // A second file appears; the first is not read again.
        std::fs::write(
            dir.path().join("events.out.tfevents.2"),
            record(&event(3.0, 2, "loss", 0.125)),
        )
        .unwrap();
        assert_eq!(values(tail.poll().unwrap()), ["0.125"]);
        // Corruption after the offset is reported at its absolute offset.
        let mut bad = data.clone();
        bad.extend(record(&event(4.0, 3, "loss", 0.1)));
        let at = data.len() + 20;
        bad[at] ^= 0xff;
        std::fs::write(&file, &bad).unwrap();
        match tail.poll().unwrap_err() {
            MetricsError::Corrupt { offset, .. } => assert_eq!(offset, data.len() as u64),
            other => panic!("{other}"),
        }
    }
}
