//! Log lines captured in memory, for tests that check what a service logs (and what it never
//! does). Services log from their worker threads, so a capture is installed as the global
//! subscriber, once per test binary.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;

/// Every log line written through it, from its installation on.
#[derive(Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<u8>>>);

pub struct CaptureWriter(Arc<Mutex<Vec<u8>>>);

impl Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = CaptureWriter;

    fn make_writer(&'a self) -> Self::Writer {
        CaptureWriter(self.0.clone())
    }
}

impl Capture {
    /// The capture of this test binary, installed as the global subscriber at the first call with
    /// the subscriber `make` builds around it (the service's own, say); later calls return it.
    pub fn global(make: impl FnOnce(Capture) -> Box<dyn Subscriber + Send + Sync>) -> Capture {
        static CAPTURE: OnceLock<Capture> = OnceLock::new();
        CAPTURE
            .get_or_init(|| {
                let capture = Capture::default();
                tracing::subscriber::set_global_default(make(capture.clone())).unwrap();
                capture
            })
            .clone()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).to_string()
    }

    /// The lines that parse as JSON.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.text().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }
}
