//! Profiles on demand, in the pprof format (`go tool pprof`, Pyroscope, Speedscope and
//! others open them): a CPU profile sampled for some seconds (feature `profiling`, the
//! `pprof` crate: SIGPROF at 99 Hz, stacks symbolized in process), and a heap profile of
//! the allocations jemalloc sampled (feature `jemalloc`, `jemalloc_pprof`; the binary must
//! run on jemalloc with `prof:true`, see `.cargo/config.toml`).
//!
//! The admin listener serves them only when turned on ([`crate::Admin::with_profiling`]):
//! a profile shows the code, and a CPU profile costs a sampling signal per thread.
//!
//! Not here: choosing the allocator (the binaries), the HTTP side (`admin`).

use std::sync::atomic::{AtomicBool, Ordering};

/// The pprof `Profile` message (`profile.proto` of github.com/google/pprof), the part xdsc
/// writes and tests read: enough to decode any profile (unknown fields, such as mappings,
/// are skipped).
pub mod proto {
    #![allow(missing_docs)]

    /// A profile: sample types, samples, and the tables they index.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Profile {
        #[prost(message, repeated, tag = "1")]
        pub sample_type: Vec<ValueType>,
        #[prost(message, repeated, tag = "2")]
        pub sample: Vec<Sample>,
        #[prost(message, repeated, tag = "4")]
        pub location: Vec<Location>,
        #[prost(message, repeated, tag = "5")]
        pub function: Vec<Function>,
        #[prost(string, repeated, tag = "6")]
        pub string_table: Vec<String>,
        #[prost(int64, tag = "9")]
        pub time_nanos: i64,
        #[prost(int64, tag = "10")]
        pub duration_nanos: i64,
        #[prost(message, optional, tag = "11")]
        pub period_type: Option<ValueType>,
        #[prost(int64, tag = "12")]
        pub period: i64,
    }

    /// A sample type: indexes of its type and unit in the string table.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ValueType {
        #[prost(int64, tag = "1")]
        pub r#type: i64,
        #[prost(int64, tag = "2")]
        pub unit: i64,
    }

    /// A stack (leaf first) and its values, one per sample type.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        #[prost(uint64, repeated, tag = "1")]
        pub location_id: Vec<u64>,
        #[prost(int64, repeated, tag = "2")]
        pub value: Vec<i64>,
        #[prost(message, repeated, tag = "3")]
        pub label: Vec<Label>,
    }

    /// A sample's label (string table indexes).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Label {
        #[prost(int64, tag = "1")]
        pub key: i64,
        #[prost(int64, tag = "2")]
        pub str: i64,
    }

    /// A code location: an address and its (inlined) lines.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Location {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(uint64, tag = "3")]
        pub address: u64,
        #[prost(message, repeated, tag = "4")]
        pub line: Vec<Line>,
    }

    /// A line of a function.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Line {
        #[prost(uint64, tag = "1")]
        pub function_id: u64,
        #[prost(int64, tag = "2")]
        pub line: i64,
    }

    /// A function: names and file (string table indexes).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Function {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(int64, tag = "2")]
        pub name: i64,
        #[prost(int64, tag = "3")]
        pub system_name: i64,
        #[prost(int64, tag = "4")]
        pub filename: i64,
    }
}

/// Why a profile could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// Another CPU profile is being taken (one sampler per process).
    #[error("a CPU profile is already being taken")]
    Busy,
    /// This build has no such profiler (the cargo feature is off).
    #[error("this build has no {0} profiler (cargo feature {1})")]
    NotBuilt(&'static str, &'static str),
    /// jemalloc's profiling is not on: not the global allocator, or started without
    /// `prof:true`.
    #[error("heap profiling is not available: {0}")]
    Unavailable(String),
    /// The profiler failed.
    #[error("profiler: {0}")]
    Failed(String),
}

/// Set while a CPU profile is being taken.
static CPU_BUSY: AtomicBool = AtomicBool::new(false);

/// Samples the process's CPU for `seconds` (blocking the calling thread; run it with
/// `spawn_blocking`) and returns the pprof protobuf (not compressed).
///
/// ```
/// # #[cfg(feature = "profiling")] {
/// use prost::Message;
/// let bytes = xdsc_server::profile::cpu(std::time::Duration::from_millis(100)).unwrap();
/// let p = xdsc_server::profile::proto::Profile::decode(&bytes[..]).unwrap();
/// assert_eq!(p.string_table[0], "");
/// # }
/// ```
pub fn cpu(duration: std::time::Duration) -> Result<Vec<u8>, ProfileError> {
    if CPU_BUSY.swap(true, Ordering::SeqCst) {
        return Err(ProfileError::Busy);
    }
    struct Clear;
    impl Drop for Clear {
        fn drop(&mut self) {
            CPU_BUSY.store(false, Ordering::SeqCst);
        }
    }
    let _clear = Clear;
    cpu_sampled(duration)
}

#[cfg(feature = "profiling")]
fn cpu_sampled(duration: std::time::Duration) -> Result<Vec<u8>, ProfileError> {
    use prost::Message;
    let failed = |e: pprof::Error| ProfileError::Failed(e.to_string());
    let guard = pprof::ProfilerGuardBuilder::default()
        .frequency(FREQUENCY)
        .blocklist(&["libc", "libgcc", "pthread", "vdso"])
        .build()
        .map_err(failed)?;
    std::thread::sleep(duration);
    let report = guard.report().build().map_err(failed)?;
    drop(guard);
    Ok(encode_cpu(&report).encode_to_vec())
}

#[cfg(not(feature = "profiling"))]
fn cpu_sampled(_: std::time::Duration) -> Result<Vec<u8>, ProfileError> {
    Err(ProfileError::NotBuilt("CPU", "profiling"))
}

/// Samples per second of the CPU profiler (99, as Go's and the Linux perf convention: off
/// the beat of periodic work).
#[cfg(feature = "profiling")]
const FREQUENCY: i32 = 99;

/// The string table under construction: each string once, `""` first.
#[cfg(feature = "profiling")]
#[derive(Default)]
struct Strings {
    table: Vec<String>,
    index: std::collections::HashMap<String, i64>,
}

#[cfg(feature = "profiling")]
impl Strings {
    fn get(&mut self, s: &str) -> i64 {
        if self.table.is_empty() {
            self.table.push(String::new());
            self.index.insert(String::new(), 0);
        }
        if let Some(i) = self.index.get(s) {
            return *i;
        }
        let i = self.table.len() as i64;
        self.table.push(s.to_owned());
        self.index.insert(s.to_owned(), i);
        i
    }
}

/// A pprof-rs report as a pprof profile: one location per (function, file, line), so lines
/// are kept (the pprof crate's own encoder keeps one line per function).
#[cfg(feature = "profiling")]
fn encode_cpu(report: &pprof::Report) -> proto::Profile {
    use std::collections::HashMap;
    let mut strings = Strings::default();
    let mut functions: HashMap<(String, String), u64> = HashMap::new();
    let mut locations: HashMap<(u64, i64), u64> = HashMap::new();
    let mut profile = proto::Profile::default();
    let period = 1_000_000_000 / i64::from(report.timing.frequency.max(1));
    for (frames, count) in &report.data {
        let mut sample = proto::Sample::default();
        for frame in &frames.frames {
            for symbol in frame {
                let key = (symbol.name(), symbol.filename().into_owned());
                let function_id = match functions.get(&key) {
                    Some(id) => *id,
                    None => {
                        let id = profile.function.len() as u64 + 1;
                        profile.function.push(proto::Function {
                            id,
                            name: strings.get(&key.0),
                            system_name: strings.get(&symbol.sys_name()),
                            filename: strings.get(&key.1),
                        });
                        functions.insert(key, id);
                        id
                    }
                };
                let line = i64::from(symbol.lineno());
                let location_id = *locations.entry((function_id, line)).or_insert_with(|| {
                    let id = profile.location.len() as u64 + 1;
                    profile.location.push(proto::Location {
                        id,
                        address: 0,
                        line: vec![proto::Line { function_id, line }],
                    });
                    id
                });
                sample.location_id.push(location_id);
            }
        }
        let count = *count as i64;
        sample.value = vec![count, count * period];
        sample.label.push(proto::Label {
            key: strings.get("thread"),
            str: strings.get(&frames.thread_name_or_id()),
        });
        profile.sample.push(sample);
    }
    let value_type = |strings: &mut Strings, t: &str, u: &str| proto::ValueType {
        r#type: strings.get(t),
        unit: strings.get(u),
    };
    profile.sample_type = vec![
        value_type(&mut strings, "samples", "count"),
        value_type(&mut strings, "cpu", "nanoseconds"),
    ];
    profile.period_type = Some(value_type(&mut strings, "cpu", "nanoseconds"));
    profile.period = period;
    profile.time_nanos = report
        .timing
        .start_time
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    profile.duration_nanos = i64::try_from(report.timing.duration.as_nanos()).unwrap_or(i64::MAX);
    let _ = strings.get("");
    profile.string_table = strings.table;
    profile
}

/// Turns jemalloc's allocation sampling on (what the binaries' profiling flag does at
/// startup), so that a later heap profile has samples.
pub async fn activate_heap_profiling() -> Result<(), ProfileError> {
    #[cfg(feature = "jemalloc")]
    {
        let ctl = jemalloc_pprof::PROF_CTL
            .as_ref()
            .ok_or_else(not_profiling)?;
        ctl.lock()
            .await
            .activate()
            .map_err(|e| ProfileError::Failed(e.to_string()))
    }
    #[cfg(not(feature = "jemalloc"))]
    Err(ProfileError::NotBuilt("heap", "jemalloc"))
}

#[cfg(feature = "jemalloc")]
fn not_profiling() -> ProfileError {
    ProfileError::Unavailable(
        "jemalloc was started without prof:true (or is not the global allocator)".to_owned(),
    )
}

/// The heap profile: the live allocations jemalloc sampled since profiling was activated,
/// as gzipped pprof protobuf (symbolized).
pub async fn heap() -> Result<Vec<u8>, ProfileError> {
    #[cfg(feature = "jemalloc")]
    {
        let ctl = jemalloc_pprof::PROF_CTL
            .as_ref()
            .ok_or_else(not_profiling)?;
        let mut ctl = ctl.lock().await;
        if !ctl.activated() {
            return Err(ProfileError::Unavailable(
                "heap profiling is not active (start with --profiling)".to_owned(),
            ));
        }
        ctl.dump_pprof()
            .map_err(|e| ProfileError::Failed(e.to_string()))
    }
    #[cfg(not(feature = "jemalloc"))]
    Err(ProfileError::NotBuilt("heap", "jemalloc"))
}
