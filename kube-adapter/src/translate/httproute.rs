//! Gateways, GatewayClasses and HTTPRoutes into Gateway listeners and virtual hosts.

use super::Cx;

pub(super) fn translate(_cx: &mut Cx<'_>) {}
