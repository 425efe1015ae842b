//! The allocator counts what an account holds, wherever it is freed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use convergio_host_memory::{Account, HostAllocator, installed};

#[global_allocator]
static ALLOCATOR: HostAllocator = HostAllocator;

const MIB: usize = 1 << 20;

#[test]
fn allocations_in_scope_are_charged_and_credited_when_freed() {
    assert!(installed());
    let account = Account::new();
    assert_eq!(account.used(), 0);
    let block = {
        let _entered = account.enter();
        vec![7u8; MIB]
    };
    let held = account.used();
    assert!((MIB..MIB + 64).contains(&held), "{held}");
    // Allocations outside the scope are not charged.
    let other = vec![1u8; MIB];
    assert_eq!(account.used(), held);
    drop(other);
    // Freed outside the scope, on another thread: credited all the same.
    std::thread::spawn(move || drop(block)).join().unwrap();
    assert_eq!(account.used(), 0);
}

#[test]
fn growing_a_block_charges_the_account_that_owns_it() {
    let owner = Account::new();
    let grower = Account::new();
    let mut block: Vec<u8> = {
        let _entered = owner.enter();
        Vec::with_capacity(1024)
    };
    {
        let _entered = grower.enter();
        block.reserve_exact(4 * MIB);
        block.extend(std::iter::repeat_n(3u8, 4 * MIB));
    }
    assert!(owner.used() >= 4 * MIB, "{}", owner.used());
    assert_eq!(grower.used(), 0);
    block.truncate(16);
    block.shrink_to_fit();
    assert!(owner.used() < 1024, "{}", owner.used());
    drop(block);
    assert_eq!(owner.used(), 0);
}

#[test]
fn scopes_nest_and_restore() {
    let outer = Account::new();
    let inner = Account::new();
    let _outer = outer.enter();
    let a = vec![0u8; 1000];
    let b = {
        let _inner = inner.enter();
        vec![0u8; 3000]
    };
    let c = vec![0u8; 5000];
    assert!((6000..6100).contains(&outer.used()), "{}", outer.used());
    assert!((3000..3100).contains(&inner.used()), "{}", inner.used());
    drop((a, b, c));
    assert_eq!(outer.used(), 0);
    assert_eq!(inner.used(), 0);
}

#[test]
fn alignment_is_kept() {
    let account = Account::new();
    let _entered = account.enter();
    for align in [1usize, 8, 16, 64, 4096] {
        let layout = std::alloc::Layout::from_size_align(100, align).unwrap();
        #[allow(unsafe_code)]
        // SAFETY: a non-zero layout, freed with the same layout.
        unsafe {
            let ptr = std::alloc::alloc_zeroed(layout);
            assert!(!ptr.is_null());
            assert_eq!(ptr as usize % align, 0);
            assert!(std::slice::from_raw_parts(ptr, 100).iter().all(|b| *b == 0));
            let ptr = std::alloc::realloc(ptr, layout, 10_000);
            assert_eq!(ptr as usize % align, 0);
            std::alloc::dealloc(
                ptr,
                std::alloc::Layout::from_size_align(10_000, align).unwrap(),
            );
        }
    }
    assert_eq!(account.used(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scoped_future_is_charged_on_every_poll() {
    let account = Account::new();
    let held = account
        .scope(async {
            let mut blocks = Vec::new();
            for _ in 0..8 {
                blocks.push(vec![1u8; 64 * 1024]);
                // Resumes on any worker thread; the account goes with it.
                tokio::task::yield_now().await;
            }
            blocks
        })
        .await;
    assert!(account.used() >= 8 * 64 * 1024, "{}", account.used());
    // What ran outside the future is not charged.
    let before = account.used();
    let unrelated = vec![0u8; MIB];
    assert_eq!(account.used(), before);
    drop((held, unrelated));
    assert_eq!(account.used(), 0);
}
