//! Classification tasks as views into a shared [`ImageSet`]: a task selects samples,
//! remaps pixels (padding and/or permutation) and relabels classes on the fly, so ten
//! PermutedMNIST tasks share one copy of the images instead of ten.

use std::sync::Arc;

use super::mnist::ImageSet;
use crate::error::{Error, Result};

/// Pixel-map entry for an output pixel that is padding (always 0.0).
pub const PAD: u32 = u32::MAX;

/// A subset of an image set as network inputs in [0, 1] and local class labels.
#[derive(Clone, Debug)]
pub struct TaskView {
    source: Arc<ImageSet>,
    samples: Vec<u32>,
    pixel_map: Option<Arc<[u32]>>,
    classes: Vec<u8>,
    input_dim: usize,
}

impl TaskView {
    /// A view of `samples` of `source`. Output pixel `i` is source pixel `pixel_map[i]`
    /// (or 0.0 for [`PAD`]); without a map the image is used as is. Local label `j` is
    /// the digit `classes[j]`; every sample's digit must be in `classes`.
    pub fn new(
        source: Arc<ImageSet>,
        samples: Vec<u32>,
        pixel_map: Option<Arc<[u32]>>,
        classes: Vec<u8>,
    ) -> Result<Self> {
        let image_len = source.image_len();
        if let Some(&s) = samples.iter().find(|&&s| s as usize >= source.len()) {
            return Err(Error::config(
                "samples",
                format!("expected indices below {}, found {s}", source.len()),
            ));
        }
        if let Some(&p) = pixel_map
            .iter()
            .flat_map(|m| m.iter())
            .find(|&&p| p != PAD && p as usize >= image_len)
        {
            return Err(Error::config(
                "pixel_map",
                format!("expected source pixels below {image_len} or PAD, found {p}"),
            ));
        }
        if let Some(&s) = samples
            .iter()
            .find(|&&s| !classes.contains(&source.labels[s as usize]))
        {
            return Err(Error::config(
                "classes",
                format!(
                    "expected every sample's digit in {classes:?}, found {} (sample {s})",
                    source.labels[s as usize]
                ),
            ));
        }
        let input_dim = pixel_map.as_ref().map_or(image_len, |m| m.len());
        Ok(Self {
            source,
            samples,
            pixel_map,
            classes,
            input_dim,
        })
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether the view has no samples.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Floats per input.
    pub fn input_dim(&self) -> usize {
        self.input_dim
    }

    /// Number of classes (local labels are `0..num_classes()`).
    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }

    /// The original digit of each local label.
    pub fn classes(&self) -> &[u8] {
        &self.classes
    }

    /// The pixel map (output pixel -> source pixel or [`PAD`]), if any.
    pub fn pixel_map(&self) -> Option<&Arc<[u32]>> {
        self.pixel_map.as_ref()
    }

    /// Index into the source set of each sample.
    pub fn samples(&self) -> &[u32] {
        &self.samples
    }

    /// The view of its first `n` samples (all of them if it holds fewer), in order.
    pub fn first(&self, n: usize) -> TaskView {
        TaskView {
            samples: self.samples[..n.min(self.samples.len())].to_vec(),
            ..self.clone()
        }
    }

    /// The local label of sample `i`.
    fn local_label(&self, i: usize) -> usize {
        let digit = self.source.labels[self.samples[i] as usize];
        // `new` checked that every digit is in `classes`, a list of at most ten.
        self.classes.iter().position(|&c| c == digit).unwrap_or(0)
    }

    /// Writes samples `indices` as rows of `inputs` (pixel / 255) and their local labels.
    ///
    /// # Panics
    /// If `inputs` is not `indices.len() * input_dim()` long, `labels` not
    /// `indices.len()`, or an index is not below `len()` (caller bugs, not user input).
    pub fn fill_batch(&self, indices: &[usize], inputs: &mut [f32], labels: &mut [usize]) {
        assert_eq!(
            inputs.len(),
            indices.len() * self.input_dim,
            "inputs length"
        );
        assert_eq!(labels.len(), indices.len(), "labels length");
        let rows = inputs.chunks_exact_mut(self.input_dim);
        for ((&i, row), label) in indices.iter().zip(rows).zip(labels.iter_mut()) {
            let image = self.source.image(self.samples[i] as usize);
            match &self.pixel_map {
                None => {
                    for (x, &p) in row.iter_mut().zip(image) {
                        *x = f32::from(p) / 255.0;
                    }
                }
                Some(map) => {
                    for (x, &m) in row.iter_mut().zip(map.iter()) {
                        *x = if m == PAD {
                            0.0
                        } else {
                            f32::from(image[m as usize]) / 255.0
                        };
                    }
                }
            }
            *label = self.local_label(i);
        }
    }

    /// All local labels, in sample order.
    pub fn labels(&self) -> Vec<usize> {
        (0..self.len()).map(|i| self.local_label(i)).collect()
    }
}

/// A classification task of a continual-learning sequence.
#[derive(Clone, Debug)]
pub struct ClassificationTask {
    pub name: String,
    pub train: TaskView,
    pub test: TaskView,
    pub validation: Option<TaskView>,
}

impl ClassificationTask {
    /// Checks that the training, test and validation (if any) sets each hold at least one
    /// sample of every class of the task, so a task that cannot be trained or evaluated is
    /// refused when the data is loaded, before any task trains. `spec` names the task (e.g.
    /// `split:8,9`) and `validation` is the number of held-out training samples.
    pub fn check_classes(&self, spec: &str, validation: usize) -> Result<()> {
        let (train_note, validation_note) = if validation > 0 {
            (
                format!(" (after holding out the last {validation} for validation)"),
                format!(" (the last {validation} training samples)"),
            )
        } else {
            (String::new(), String::new())
        };
        check_view(&self.train, spec, "training", &train_note)?;
        check_view(&self.test, spec, "test", "")?;
        if let Some(v) = &self.validation {
            check_view(v, spec, "validation", &validation_note)?;
        }
        Ok(())
    }
}

/// An error unless `view` has a sample of each of its classes; `spec` names the task,
/// `split` the set, `note` says more about the set.
fn check_view(view: &TaskView, spec: &str, split: &str, note: &str) -> Result<()> {
    let labels = &view.source.labels;
    let mut by_digit = [0usize; 256];
    for &s in &view.samples {
        by_digit[usize::from(labels[s as usize])] += 1;
    }
    let count = |c: u8| by_digit[usize::from(c)];
    let missing: Vec<String> = view
        .classes
        .iter()
        .filter(|&&c| count(c) == 0)
        .map(|c| c.to_string())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let classes: Vec<String> = view.classes.iter().map(|c| c.to_string()).collect();
    let classes = classes.join(", ");
    let message = if view.source.is_empty() {
        format!(
            "task {spec}: the {split} set is empty{note}: expected at least one sample of each of its classes {classes}, found a file of 0 samples"
        )
    } else {
        let counts: Vec<String> = view
            .classes
            .iter()
            .map(|&c| format!("{c}: {}", count(c)))
            .collect();
        format!(
            "task {spec}: no samples of class{} {} in the {split} set{note}: expected at least one of each of its classes {classes}, found {}",
            if missing.len() > 1 { "es" } else { "" },
            missing.join(", "),
            counts.join(", ")
        )
    };
    let path = &view.source.labels_path;
    if path.as_os_str().is_empty() {
        Err(Error::config("task", message))
    } else {
        Err(Error::format(path, message))
    }
}

/// Splits the last `validation` of `samples` off as a validation set (none if 0); `spec`
/// names the task in errors. At least one training sample must remain.
pub(crate) fn hold_out(
    mut samples: Vec<u32>,
    validation: usize,
    spec: &str,
) -> Result<(Vec<u32>, Option<Vec<u32>>)> {
    if validation == 0 {
        return Ok((samples, None));
    }
    let n = samples.len();
    if validation >= n {
        let what = if validation == n {
            "which leaves no training samples"
        } else {
            "more than the task has"
        };
        return Err(Error::config(
            "validation",
            format!(
                "task {spec}: expected fewer held-out samples than its {n} training samples, found {validation}, {what}"
            ),
        ));
    }
    let held = samples.split_off(n - validation);
    Ok((samples, Some(held)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Arc<ImageSet> {
        Arc::new(ImageSet {
            pixels: vec![0, 255, 51, 102, 10, 20, 30, 40],
            labels: vec![7, 3],
            rows: 2,
            cols: 2,
            labels_path: "labels.idx".into(),
        })
    }

    #[test]
    fn fill_batch_maps_pixels_pads_and_relabels() {
        let map: Arc<[u32]> = Arc::from(vec![PAD, 3, 0, PAD, 1]);
        let view = TaskView::new(tiny(), vec![0, 1], Some(map), vec![3, 7]).unwrap();
        let mut x = vec![9.0; 10];
        let mut y = vec![9; 2];
        view.fill_batch(&[1, 0], &mut x, &mut y);
        assert_eq!(y, [0, 1]);
        let e = |p: u8| f32::from(p) / 255.0;
        assert_eq!(
            x,
            [0.0, e(40), e(10), 0.0, e(20), 0.0, e(102), 0.0, 0.0, 1.0]
        );
        assert_eq!(view.labels(), [1, 0]);
    }

    #[test]
    fn new_rejects_bad_views() {
        let err = |r: Result<TaskView>| r.unwrap_err().to_string();
        assert!(err(TaskView::new(tiny(), vec![2], None, vec![3, 7])).contains("found 2"));
        let map: Arc<[u32]> = Arc::from(vec![4]);
        assert!(err(TaskView::new(tiny(), vec![0], Some(map), vec![7])).contains("pixel_map"));
        assert!(err(TaskView::new(tiny(), vec![0, 1], None, vec![7])).contains("found 3"));
    }

    #[test]
    fn hold_out_takes_the_last_samples() {
        assert_eq!(
            hold_out(vec![1, 2, 3], 1, "t").unwrap(),
            (vec![1, 2], Some(vec![3]))
        );
        assert_eq!(
            hold_out(vec![1, 2, 3], 0, "t").unwrap(),
            (vec![1, 2, 3], None)
        );
        let err = |v| hold_out(vec![1, 2, 3], v, "t").unwrap_err().to_string();
        assert!(err(3).contains("leaves no training samples"), "{}", err(3));
        assert!(err(4).contains("more than the task has"), "{}", err(4));
    }

    #[test]
    fn check_classes_names_the_task_split_and_missing_class() {
        let view = |samples: Vec<u32>| TaskView::new(tiny(), samples, None, vec![3, 7]).unwrap();
        let task = |train, test, validation| ClassificationTask {
            name: "t".into(),
            train: view(train),
            test: view(test),
            validation,
        };
        assert!(task(vec![0, 1], vec![1, 0], None)
            .check_classes("split:3,7", 0)
            .is_ok());
        let msg = task(vec![0, 1], vec![1], None)
            .check_classes("split:3,7", 0)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("labels.idx: task split:3,7: no samples of class 7 in the test set"));
        assert!(msg.contains("found 3: 1, 7: 0"), "{msg}");
        let msg = task(vec![0, 1], vec![], None)
            .check_classes("split:3,7", 0)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("no samples of classes 3, 7 in the test set"),
            "{msg}"
        );
        let msg = task(vec![0, 1], vec![0, 1], Some(view(vec![1])))
            .check_classes("split:3,7", 1)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("class 7 in the validation set (the last 1"),
            "{msg}"
        );
    }
}
