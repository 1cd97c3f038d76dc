"""netemu's built-in ingress controller (ingress-nginx's image): routes, upstream, TLS, proxy, app."""
