//! What users have, as Catalyst objects: docker-compose files as ServiceGroups
//! ([`compose`]), OpenStack flavors and servers as CatalystVMs and CatalystHosts
//! ([`openstack`]). Pure: text in, objects and warnings out; the files an import reads are
//! read by the caller.

pub mod compose;
pub mod names;
pub mod openstack;
