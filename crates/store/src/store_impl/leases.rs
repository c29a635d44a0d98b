//! Leases with fencing tokens: which process leads each controller, and
//! the token that proves it in every write it makes under the lease.

use oxflow_core::Timestamp;

use super::{DbContext, Reader};
use crate::{Result, Store};

/// A lease held: what writes under it name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The lease (a controller's name).
    pub lease: String,
    /// The process holding it.
    pub holder: String,
    /// The fencing token of this holding.
    pub token: i64,
}

/// A `RETURNING name, holder, token` row.
fn fence_from_row(row: &sqlx::any::AnyRow) -> Result<Fence> {
    let r = Reader::keyed(row, "lease", "name")?;
    Ok(Fence {
        lease: r.get("name")?,
        holder: r.get("holder")?,
        token: r.get("token")?,
    })
}

impl Store {
    /// Takes or renews lease `name` for `holder` until `now + ttl_ms`: it is
    /// free, expired, or already `holder`'s. The fencing token grows when
    /// the holder changes. `None` while another holder's lease runs.
    pub async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now: Timestamp,
        ttl_ms: i64,
    ) -> Result<Option<Fence>> {
        let row = sqlx::query(
            "INSERT INTO leases (name, holder, token, renewed_at, expires_at) VALUES ($1, $2, 1, $3, $4) \
             ON CONFLICT (name) DO UPDATE SET \
               token = CASE WHEN leases.holder = excluded.holder THEN leases.token ELSE leases.token + 1 END, \
               holder = excluded.holder, renewed_at = excluded.renewed_at, expires_at = excluded.expires_at \
             WHERE leases.holder = excluded.holder OR leases.expires_at <= excluded.renewed_at \
             RETURNING name, holder, token",
        )
        .bind(name)
        .bind(holder)
        .bind(now.millis())
        .bind(now.millis() + ttl_ms)
        .fetch_optional(&self.pool)
        .await
        .context(|| format!("taking lease {name} for {holder}"))?;
        row.as_ref().map(fence_from_row).transpose()
    }

    /// Who holds lease `name` (expired or not), if it was ever taken.
    pub async fn lease_holder(&self, name: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT holder FROM leases WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .context(|| format!("reading lease {name}"))?;
        row.map(|r| Reader::keyed(&r, "lease", "holder")?.get("holder"))
            .transpose()
    }

    /// Takes lease `name` from `gone`, a holder known to have died (a
    /// process of this host that no longer exists), before it expires: as
    /// after an expiry, the fencing token grows, so whatever `gone` might
    /// still send is refused. `None` when `gone` no longer holds it.
    pub async fn take_lease_from(
        &self,
        name: &str,
        gone: &str,
        holder: &str,
        now: Timestamp,
        ttl_ms: i64,
    ) -> Result<Option<Fence>> {
        let row = sqlx::query(
            "UPDATE leases SET holder = $3, token = token + 1, renewed_at = $4, expires_at = $5 \
             WHERE name = $1 AND holder = $2 RETURNING name, holder, token",
        )
        .bind(name)
        .bind(gone)
        .bind(holder)
        .bind(now.millis())
        .bind(now.millis() + ttl_ms)
        .fetch_optional(&self.pool)
        .await
        .context(|| format!("taking lease {name} from {gone}"))?;
        row.as_ref().map(fence_from_row).transpose()
    }

    /// Gives the lease up (a clean shutdown), so another process can take
    /// it at once.
    pub async fn release_lease(&self, fence: &Fence) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE leases SET expires_at = 0 WHERE name = $1 AND holder = $2 AND token = $3",
        )
        .bind(&fence.lease)
        .bind(&fence.holder)
        .bind(fence.token)
        .execute(&self.pool)
        .await
        .context(|| format!("releasing lease {}", fence.lease))?;
        Ok(done.rows_affected() == 1)
    }

    /// Whether `fence` still holds at `now`.
    pub async fn lease_holds(&self, fence: &Fence, now: Timestamp) -> Result<bool> {
        let row = sqlx::query(
            "SELECT name FROM leases WHERE name = $1 AND holder = $2 AND token = $3 AND expires_at > $4",
        )
        .bind(&fence.lease)
        .bind(&fence.holder)
        .bind(fence.token)
        .bind(now.millis())
        .fetch_optional(&self.pool)
        .await
        .context(|| format!("checking lease {}", fence.lease))?;
        Ok(row.is_some())
    }
}
