//! Delete: an RMW whose callbacks tombstone the live record (in place in the mutable region,
//! else by appending a tombstone record); absent keys are left alone.

use crate::record::{RecordMeta, ValueMut};
use crate::store::Pinned;
use crate::{CopyAction, InPlace, RmwOps, RmwOutcome, StoreError};

struct DeleteOps;

impl RmwOps for DeleteOps {
    fn initial(&mut self) -> Option<(Vec<u8>, RecordMeta)> {
        None
    }
    fn in_place(&mut self, _value: &mut ValueMut<'_>, _meta: &mut RecordMeta) -> InPlace {
        InPlace::Delete
    }
    fn copy_update(
        &mut self,
        _old: &[u8],
        _m: RecordMeta,
        _out: &mut Vec<u8>,
        _meta: &mut RecordMeta,
    ) -> CopyAction {
        CopyAction::Delete
    }
}

impl Pinned<'_> {
    /// Deletes `key` (no-op if absent).
    pub fn delete(&mut self, key: &[u8]) -> Result<(), StoreError> {
        self.delete_existing(key).map(|_| ())
    }

    /// Deletes `key`; returns whether a live record existed.
    pub fn delete_existing(&mut self, key: &[u8]) -> Result<bool, StoreError> {
        Ok(self.rmw(key, &mut DeleteOps)? == RmwOutcome::Deleted)
    }
}
