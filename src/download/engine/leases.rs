//! The leases of the running downloads: renewed while they run, and given up in time when the
//! database stops answering. A download claimed on a shared database holds a lease; another
//! instance takes it over (and resumes the `.part` by Range) once the lease has run out. So an
//! instance that cannot renew stops its own transfers a margin *before* its leases end, and a
//! file never has two writers: while the database is away for less than that, downloads go on
//! (their progress waits, see `patience.rs`); longer, they stop here and whichever instance
//! reclaims them first when the database is back resumes them.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::handle::DownloadHandle;
use crate::domain::DeliveryId;
use crate::store::Store;

/// How often leases are renewed, as a fraction of the lease: five tries per lease.
const RENEWALS_PER_LEASE: u32 = 5;
/// The margin kept before a lease ends, and the longest a renewal is waited for, as a fraction
/// of the lease (5 s of the default 30).
const MARGIN_PER_LEASE: u32 = 6;
/// Between two tries while the database does not answer.
const RETRY: Duration = Duration::from_secs(1);

/// Renews the running downloads' leases until `cancel`. A download another instance took over
/// is stopped; when no renewal succeeded for the lease minus the margin (database away) and
/// other instances may share the database, every running download is stopped, at that moment
/// (not at the next try).
pub(super) async fn keep(store: Store, handle: DownloadHandle, cancel: CancellationToken) {
    let lease = store.lease();
    let every = lease / RENEWALS_PER_LEASE;
    let margin = lease / MARGIN_PER_LEASE;
    let fence = store.may_have_peers();
    // The start of the last renewal that succeeded: every lease held here ends after it + lease
    // (a claim made since then ends later still), so they are given up at it + lease - margin.
    let mut renewed = Instant::now();
    let mut failing = false;
    let mut fenced = false;
    loop {
        let give_up_at = renewed + lease - margin;
        let mut wake = Instant::now() + if failing { RETRY.min(every) } else { every };
        if fence && failing && !fenced {
            wake = wake.min(give_up_at);
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep_until(wake.into()) => {}
        }
        let ids: Vec<i64> = handle.running_ids().into_iter().map(|id| id.0).collect();
        if ids.is_empty() {
            renewed = Instant::now();
            failing = false;
            fenced = false;
            continue;
        }
        if fence && failing && !fenced && Instant::now() >= give_up_at {
            fenced = true;
            tracing::warn!(
                downloads = ids.len(),
                unrenewed_ms = renewed.elapsed().as_millis() as u64,
                lease_s = lease.as_secs(),
                "the database has not answered for almost a lease: stopping the downloads here \
                 before their leases run out (the first instance to reach the database again \
                 resumes them)"
            );
            for id in &ids {
                handle.cancel(DeliveryId(*id));
            }
            continue;
        }
        let asked = Instant::now();
        // Never waited past the moment the leases are given up.
        let wait = if fence && !fenced {
            margin.min(give_up_at.saturating_duration_since(asked))
        } else {
            margin
        };
        match tokio::time::timeout(wait, store.renew_download_leases(&ids)).await {
            Ok(Ok(held)) => {
                if failing {
                    tracing::info!("download leases renewed again");
                }
                renewed = asked;
                failing = false;
                fenced = false;
                for id in ids.iter().filter(|id| !held.contains(id)) {
                    tracing::warn!(
                        id,
                        "download taken over by another instance: stopping it here"
                    );
                    handle.cancel(DeliveryId(*id));
                }
            }
            Ok(Err(e)) => {
                if !failing {
                    tracing::warn!(error = %e, "cannot renew the download leases: trying again every second");
                }
                failing = true;
            }
            Err(_) => {
                if !failing {
                    tracing::warn!(
                        wait_ms = wait.as_millis() as u64,
                        "the database did not answer the lease renewal in time: trying again every second"
                    );
                }
                failing = true;
            }
        }
    }
}
