//! An in-memory writer for captured log output.

use std::{
    io,
    sync::{Arc, Mutex},
};

use solti_observe::{BoxSubscriber, LoggerConfig};

/// Shared buffer; clones write to the same bytes.
#[derive(Clone, Default)]
pub(crate) struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    pub(crate) fn subscriber(&self, config: &LoggerConfig) -> BoxSubscriber {
        let sink = self.clone();
        config.build_subscriber(move || sink.clone()).unwrap()
    }

    pub(crate) fn lines(&self) -> Vec<String> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
