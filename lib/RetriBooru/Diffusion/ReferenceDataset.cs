using RetriBooru.Settings;
using RetriBooru.Data;
using RetriBooru.Imaging;
using static TorchSharp.torch;

namespace RetriBooru.Diffusion;

/// <summary>One reference: its image in [-1, 1] ([3, S, S]) and concept word.</summary>
public sealed record ReferenceCrop(Tensor Image, Concept Concept, string SourceId);

/// <summary>A training/evaluation example with references, loaded and resized.</summary>
public sealed record ReferenceExample(string Id, Tensor Image, Tensor? Mask, string Prompt, string Character, string ClothingId, string Split,
    IReadOnlyList<ReferenceCrop> References);

/// <summary>
/// The examples of a manifest with their images, masks and reference crops loaded at the model's image
/// size (small datasets fit in memory: 2,000 examples x 5 images x 3x32x32 floats is 120 MB). A file
/// that cannot be read is reported in <see cref="Skipped"/> and its example left out.
/// </summary>
public sealed class ReferenceDataset : IDisposable
{
    readonly List<ReferenceExample> _items = [];

    public string Folder { get; }
    public int ImageSize { get; }
    public int Count => _items.Count;
    public IReadOnlyList<SkippedFile> Skipped { get; }
    public int MaxReferences => _items.Count == 0 ? 0 : _items.Max(e => e.References.Count);
    public IEnumerable<string> Prompts => _items.Select(e => e.Prompt);
    public IReadOnlyList<ReferenceExample> Items => _items;

    public ReferenceDataset(string datasetFolder, IEnumerable<TrainingExample> examples, int imageSize, IProgress<(int Done, int Total)>? progress = null)
    {
        Folder = datasetFolder;
        ImageSize = imageSize;
        var skipped = new List<SkippedFile>();
        var list = examples.ToList();
        for (int i = 0; i < list.Count; i++)
        {
            var example = list[i];
            string current = example.Image;
            try
            {
                using var scope = NewDisposeScope();
                var image = ImageTensor.Load(ManifestReader.Resolve(datasetFolder, example.Image), imageSize);
                Tensor? mask = null;
                if (example.Mask is not null)
                {
                    current = example.Mask;
                    mask = ImageTensor.LoadMask(ManifestReader.Resolve(datasetFolder, example.Mask), imageSize);
                }
                var refs = new List<ReferenceCrop>();
                foreach (var reference in example.References)
                {
                    current = reference.Image;
                    refs.Add(new ReferenceCrop(ImageTensor.Load(ManifestReader.Resolve(datasetFolder, reference.Image), imageSize).MoveToOuterDisposeScope(),
                        reference.Concept, reference.SourceId));
                }
                _items.Add(new ReferenceExample(example.Target, image.MoveToOuterDisposeScope(), mask?.MoveToOuterDisposeScope(), example.Prompt,
                    example.Character, example.ClothingId, example.Split, refs));
            }
            catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
            {
                // Only named, never opened: the value may be one that SafePath refused.
                skipped.Add(new SkippedFile(Path.Combine(datasetFolder, current), e.Message));
            }
            progress?.Report((i + 1, list.Count));
        }
        Skipped = skipped;
    }

    public ReferenceExample Get(int index) => _items[index];

    public void Dispose()
    {
        foreach (var item in _items)
        {
            item.Image.Dispose();
            item.Mask?.Dispose();
            foreach (var r in item.References) r.Image.Dispose();
        }
        _items.Clear();
    }
}
