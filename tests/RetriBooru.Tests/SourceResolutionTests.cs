using RetriBooru.Data;
using RetriBooru.Data.Synth;
using RetriBooru.Diffusion;
using RetriBooru.Settings;
using Xunit;
using static TorchSharp.torch;

namespace RetriBooru.Tests;

/// <summary>
/// A world drawn at twice the model's size (issue #16's source-resolution lever, experiments/generalisation-source-resolution.json):
/// the model still trains on pictures at its own size, but the reference crops are cut from the larger pictures.
/// </summary>
public class SourceResolutionTests
{
    [Fact]
    public void A_world_drawn_at_twice_the_model_size_loads_at_the_model_size_with_crops_that_keep_the_source_detail()
    {
        Torch.Load();
        using var dir = new TempDir();
        double FaceCropDetail(int worldSize, out int examples)
        {
            var folder = Path.Combine(dir.Path, $"world{worldSize}");
            SynthDataset.Create(folder, new SynthOptions { Characters = 4, OutfitsPerCharacter = 2, ImagesPerCharacter = 8, Size = worldSize, Seed = 5 });
            using var data = new ReferenceDataset(folder, ManifestReader.Read(folder, ReferenceScheme.B, SplitNames.Train), imageSize: 32);
            Assert.Empty(data.Skipped);
            examples = data.Count;
            var detail = new List<double>();
            foreach (var example in data.Items)
            {
                Assert.Equal([3L, 32, 32], example.Image.shape);
                foreach (var reference in example.References)
                {
                    Assert.Equal([3L, 32, 32], reference.Image.shape);
                    if (reference.Concept != Concept.Face) continue;
                    // Mean absolute difference between horizontal neighbours: an upscaled small crop is smooth.
                    using var scope = NewDisposeScope();
                    var image = reference.Image;
                    detail.Add((image[.., .., 1..] - image[.., .., ..^1]).abs().mean().item<float>());
                }
            }
            Assert.NotEmpty(detail);
            return detail.Average();
        }
        // Same seed and options at two sizes; the example counts may differ by a few (near-duplicate hashes depend on the size).
        double small = FaceCropDetail(32, out int examples32), large = FaceCropDetail(64, out int examples64);
        Assert.True(examples32 > 10 && examples64 > 10, $"{examples32} / {examples64} training examples");
        // Measured: 0.077 from the 32 px world, 0.132 from the 64 px one (face crops of ~12 vs ~25 px of head).
        Assert.True(large > 1.25 * small, $"face-crop detail {large:F4} (64 px world) vs {small:F4} (32 px world)");
    }
}
