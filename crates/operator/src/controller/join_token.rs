//! Each VM's own bootstrap token, unless `--mint-join-tokens=false`: the I/O around
//! [`catalyst_core::render::token`]. A VM's token is minted once and kept in its cloud-init
//! Secret (so the same token is found again and the VM's cloud-init never changes). Its
//! bootstrap-token Secret in `kube-system` exists only while the VM's instance runs and its node
//! is not yet verified and Ready: made (again, after a restart from a fresh disk) then, extended
//! while less than half of [`TTL`] is left, and deleted once the node is verified and Ready, the
//! VM stops, or the VM goes. The operator sees the tokens through a metadata watch of
//! `kube-system`'s token Secrets it labelled, so keeping one costs no read.

use super::{Context, Error, key_of, object_id};
use catalyst_api::CatalystVM;
use catalyst_core::key::ObjectKey;
use catalyst_core::render::token::{BootstrapToken, EXPIRES_ANNOTATION, TOKEN_NAMESPACE};
use catalyst_core::render::{FIELD_MANAGER, cloud_init_secret_name};
use catalyst_core::validation::node_name;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, ResourceExt};

/// How long a token is valid after it was last extended: long enough for a slow first boot
/// (an image to pull, a stock image to turn into a node), short next to kubeadm's default of 24 h.
pub const TTL: SignedDuration = SignedDuration::from_hours(2);

/// How long a token may wait for kube-controller-manager's bootstrapsigner to sign
/// `kube-public/cluster-info` for it before the VM says it is not signed: the signer reacts to
/// the Secret's creation within a second where it runs.
pub const SIGNING_GRACE: SignedDuration = SignedDuration::from_secs(60);

/// Where `kubeadm join`'s discovery reads the cluster's CA and endpoint, and the signature of
/// each token that may vouch for them (k8s.io/cluster-bootstrap `token/api/types.go`:
/// `ConfigMapClusterInfo` in `kube-public`, keys `JWSSignatureKeyPrefix` + token id).
pub const CLUSTER_INFO: (&str, &str) = ("kube-public", "cluster-info");
const SIGNATURE_PREFIX: &str = "jws-kubeconfig-";

/// The VM's token: the one the operator remembers, or the one its cloud-init Secret keeps, or
/// a new one. Nothing is written here: the cloud-init Secret that keeps it is applied with the
/// VM's children, its bootstrap-token Secret by [`keep`].
pub async fn token_of(vm: &CatalystVM, ctx: &Context) -> Result<BootstrapToken, Error> {
    let id = object_id("CatalystVM", &key_of(vm));
    if let Some(token) = ctx.tokens.lock().get(&id) {
        return Ok(token.clone());
    }
    let token = match kept(vm, ctx).await? {
        Some(token) => token,
        None => mint()?,
    };
    ctx.tokens.lock().insert(id, token.clone());
    Ok(token)
}

/// What became of a token [`keep`] wants to exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signing {
    /// Signed, or too young to tell, or not wanted.
    Fine,
    /// In `kube-system` for longer than [`SIGNING_GRACE`] with no signature in `cluster-info`:
    /// no bootstrapsigner runs (it is off in kube-controller-manager unless asked for).
    Unsigned { id: String, waited: SignedDuration },
    /// There is no `kube-public/cluster-info` at all (not a cluster kubeadm made).
    NoClusterInfo,
}

/// Makes the VM's bootstrap-token Secret exist, valid for [`TTL`], when `wanted` (its instance
/// runs and its node is not yet verified and Ready), and not exist otherwise; says whether the
/// bootstrapsigner has signed it.
pub async fn keep(vm: &CatalystVM, token: &BootstrapToken, wanted: bool, ctx: &Context) -> Result<Signing, Error> {
    let vm_key = key_of(vm);
    let tokens: Api<Secret> = Api::namespaced(ctx.client.clone(), TOKEN_NAMESPACE);
    let failed = |source| Error::JoinToken { vm: vm_key.clone(), source };
    let cached = ctx.stores.token(&token.secret_name());
    if !wanted {
        if cached.is_some() {
            delete(&tokens, token).await.map_err(failed)?;
        }
        return Ok(Signing::Fine);
    }
    let now = (ctx.clock)().0;
    let annotation = cached.as_ref().and_then(|t| t.annotations().get(EXPIRES_ANNOTATION).cloned());
    let expires = annotation.and_then(|e| e.parse::<Timestamp>().ok());
    if expires.is_none_or(|at| at.duration_since(now) < TTL / 2) {
        let until = now.checked_add(TTL).unwrap_or(now).to_string();
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let secret = token.secret(&node_name(vm), &until);
        tokens.patch(&token.secret_name(), &params, &Patch::Apply(&secret)).await.map_err(failed)?;
    }
    let made = cached.and_then(|t| t.creation_timestamp()).map(|t| t.0);
    let waited = made.map(|made| now.duration_since(made)).unwrap_or_default();
    let signed = object_id("Token", &ObjectKey::namespaced(TOKEN_NAMESPACE, token.secret_name()));
    if waited < SIGNING_GRACE || ctx.signed.lock().contains_key(&signed) {
        return Ok(Signing::Fine);
    }
    let (namespace, name) = CLUSTER_INFO;
    let info = Api::<ConfigMap>::namespaced(ctx.client.clone(), namespace).get_opt(name).await.map_err(failed)?;
    let Some(info) = info else { return Ok(Signing::NoClusterInfo) };
    let signature = format!("{SIGNATURE_PREFIX}{}", token.id());
    if info.data.as_ref().is_some_and(|data| data.contains_key(&signature)) {
        ctx.signed.lock().insert(signed, ());
        return Ok(Signing::Fine);
    }
    Ok(Signing::Unsigned { id: token.id().to_string(), waited })
}

/// Deletes the VM's token with the VM, if it has one.
pub async fn revoke(vm: &CatalystVM, ctx: &Context) -> Result<(), Error> {
    let Some(token) = kept(vm, ctx).await? else { return Ok(()) };
    ctx.tokens.lock().remove(&object_id("CatalystVM", &key_of(vm)));
    let tokens: Api<Secret> = Api::namespaced(ctx.client.clone(), TOKEN_NAMESPACE);
    delete(&tokens, &token).await.map_err(|source| Error::JoinToken { vm: key_of(vm), source })
}

async fn delete(tokens: &Api<Secret>, token: &BootstrapToken) -> Result<(), kube::Error> {
    match tokens.delete(&token.secret_name(), &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(error) => Err(error),
    }
}

/// The token the VM's cloud-init Secret keeps, if it has one yet. A Secret the watch says does
/// not exist is not read.
async fn kept(vm: &CatalystVM, ctx: &Context) -> Result<Option<BootstrapToken>, Error> {
    if ctx.known.absent("Secret", &ObjectKey::beside(vm, cloud_init_secret_name(vm))) {
        return Ok(None);
    }
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

/// The name of the VM node a minted token is for, from its Secret's label, where this operator
/// minted it.
pub fn node_of_token(ctx: &Context, id: &str) -> Option<String> {
    let secret = ctx.stores.token(&format!("{}{id}", catalyst_core::render::token::SECRET_PREFIX))?;
    secret.labels().get(catalyst_core::render::labels::JOIN_TOKEN_OF).cloned()
}
