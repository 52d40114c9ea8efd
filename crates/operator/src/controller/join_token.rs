//! Each VM's own bootstrap token, with `--mint-join-tokens`: the I/O around
//! [`catalyst_core::render::token`]. A VM's token is minted once and kept in its cloud-init
//! Secret (so the same token is found again and the VM's cloud-init never changes); its
//! bootstrap-token Secret in `kube-system` expires [`TTL`] after it was last extended, and it is
//! extended (or made again, when the API server's token cleaner removed it) only while the VM's
//! node is not verified and Ready, so a token outlives a join by at most that. The token goes
//! with the VM.

use super::{Context, Error, key_of};
use catalyst_api::CatalystVM;
use catalyst_core::render::token::{BootstrapToken, TOKEN_NAMESPACE};
use catalyst_core::render::{FIELD_MANAGER, cloud_init_secret_name};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, ResourceExt};

/// How long a token is valid after it was last extended: long enough for a slow first boot
/// (an image to pull, a stock image to turn into a node), short next to kubeadm's default of 24 h.
pub const TTL: SignedDuration = SignedDuration::from_hours(2);

/// The VM's token: the one its cloud-init Secret keeps, or a new one. Its bootstrap-token
/// Secret is created, or extended when less than half of [`TTL`] is left, unless the VM has
/// `joined` (its node is verified and Ready).
pub async fn ensure(vm: &CatalystVM, joined: bool, ctx: &Context) -> Result<BootstrapToken, Error> {
    let token = match kept(vm, ctx).await? {
        Some(token) => token,
        None => mint()?,
    };
    if joined {
        return Ok(token);
    }
    let vm_key = key_of(vm);
    let tokens: Api<Secret> = Api::namespaced(ctx.client.clone(), TOKEN_NAMESPACE);
    let failed = |source| Error::JoinToken { vm: vm_key.clone(), source };
    let current = tokens.get_opt(&token.secret_name()).await.map_err(failed)?;
    let now = (ctx.clock)().0;
    let expires = current.as_ref().and_then(BootstrapToken::expiration_of).and_then(|e| e.parse::<Timestamp>().ok());
    if expires.is_none_or(|at| at.duration_since(now) < TTL / 2) {
        let until = now.checked_add(TTL).unwrap_or(now).to_string();
        let secret = token.secret(&vm_key, &until);
        let params = PatchParams::apply(FIELD_MANAGER).force();
        tokens.patch(&token.secret_name(), &params, &Patch::Apply(&secret)).await.map_err(failed)?;
    }
    Ok(token)
}

/// Deletes the VM's token, if it has one (its cloud-init Secret names it).
pub async fn revoke(vm: &CatalystVM, ctx: &Context) -> Result<(), Error> {
    let Some(token) = kept(vm, ctx).await? else { return Ok(()) };
    let tokens: Api<Secret> = Api::namespaced(ctx.client.clone(), TOKEN_NAMESPACE);
    match tokens.delete(&token.secret_name(), &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(source) => Err(Error::JoinToken { vm: key_of(vm), source }),
    }
}

/// The token the VM's cloud-init Secret keeps, if it has one yet.
async fn kept(vm: &CatalystVM, ctx: &Context) -> Result<Option<BootstrapToken>, Error> {
    let cloud_init: Api<Secret> = Api::namespaced(ctx.client.clone(), &vm.namespace().unwrap_or_default());
    let secret = cloud_init.get_opt(&cloud_init_secret_name(vm)).await;
    let secret = secret.map_err(|source| Error::JoinToken { vm: key_of(vm), source })?;
    Ok(secret.and_then(|secret| BootstrapToken::kept_in(&secret)))
}

/// A new token from the kernel's random source.
fn mint() -> Result<BootstrapToken, Error> {
    let mut bytes = [0u8; 64];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
    read.map_err(Error::Random)?;
    // 64 bytes hold 22 below 252 but with a vanishing chance; then ask again.
    BootstrapToken::from_random(&bytes).map_or_else(mint, Ok)
}
