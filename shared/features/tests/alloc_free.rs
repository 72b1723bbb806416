//! Zero heap allocations per window in steady state, counted by a global allocator.
//! The one place outside the FFI edge with `unsafe`: a `GlobalAlloc` impl needs it.
//! (Its own test binary: the counting allocator sees only this file's work.)

#![allow(unsafe_code)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use common::{rotation, walker};
use tacit_features::factors::gait::{GaitConfig, GaitExtractor};

struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn gait_extraction_allocates_nothing_per_window() {
    let samples = walker(600.0, 100.0, 1.8, &rotation(0.2, 0.4, 0.6), 0.2, 9);
    let mut ex = GaitExtractor::new(GaitConfig::default()).unwrap();
    // Warm up: the first windows may touch lazily initialised state.
    ex.push(&samples[..6000], |_| {});
    let mut windows = 0u64;
    let mut checksum = 0.0;
    let before = ALLOCS.load(Ordering::SeqCst);
    ex.push(&samples[6000..], |w| {
        windows += 1;
        checksum += w.features[0];
    });
    let after = ALLOCS.load(Ordering::SeqCst);
    assert!(windows > 150, "{windows} windows");
    assert!(checksum > 0.0);
    assert_eq!(
        after - before,
        0,
        "{} allocations for {windows} windows",
        after - before
    );
    println!("{windows} windows, 0 allocations");
}
