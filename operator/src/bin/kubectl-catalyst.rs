fn main() {
    for (name, crd) in catalyst::crd::all() {
        std::fs::write(format!("/tmp/x/{name}"), catalyst::crd::to_yaml(&crd)).unwrap();
    }
}
