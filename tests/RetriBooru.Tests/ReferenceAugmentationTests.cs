using RetriBooru.Diffusion;
using RetriBooru.Experiments;
using RetriBooru.Modeling;
using RetriBooru.Runtime;
using RetriBooru.Settings;
using Xunit;
using static TorchSharp.torch;

namespace RetriBooru.Tests;

public class ReferenceAugmentationTests(SmallReferenceWorld world) : IClassFixture<SmallReferenceWorld>
{
    static ReferenceCrop Crop(Tensor image) => new(image, Concept.Face, "source");

    [Fact]
    public void A_one_colour_reference_keeps_its_colour_while_layout_changes()
    {
        Torch.Load();
        using var scope = NewDisposeScope();
        // Channel values of one colour, and a crop whose left half is dark and right half bright.
        var flat = ones(3, 32, 32) * tensor(new float[] { 0.8f, -0.25f, 0.5f }).reshape(3, 1, 1);
        var halves = cat([full([3, 32, 16], -1f), full([3, 32, 16], 1f)], 2);
        using var generator = Seeding.TorchGenerator(3, "augmentation-test");
        int mirrored = 0, cropped = 0;
        for (int draw = 0; draw < 20; draw++)
        {
            var augmented = ReferenceAugmentation.Apply([Crop(flat), Crop(halves)], 0.5, generator);
            Assert.True((augmented[0].Image - flat).abs().max().item<float>() < 1e-6, "a one-colour crop changed colour"); // bilinear weights sum to 1 up to float rounding
            Assert.Equal(Concept.Face, augmented[1].Concept);
            var image = augmented[1].Image;
            Assert.Equal([3L, 32L, 32L], image.shape);
            // Mirrored: bright on the left. Cropped: the dark/bright edge moves away from the middle column.
            if (image[0, 16, 0].item<float>() > 0) mirrored++;
            float left = image[0, 16, 15].item<float>(), right = image[0, 16, 16].item<float>();
            if (!(Math.Abs(left) == 1f && right == -left)) cropped++; // uncropped (mirrored or not), the sharp edge sits between columns 15 and 16
        }
        Assert.InRange(mirrored, 4, 16);
        Assert.True(cropped >= 10, $"only {cropped} of 20 draws moved the edge");
    }

    [Fact]
    public void Same_generator_state_gives_the_same_augmentation_and_strength_0_draws_nothing()
    {
        Torch.Load();
        using var scope = NewDisposeScope();
        var image = rand(3, 32, 32, generator: Seeding.TorchGenerator(1, "image"));
        using var a = Seeding.TorchGenerator(7, "augmentation-test");
        using var b = Seeding.TorchGenerator(7, "augmentation-test");
        Assert.Equal(ReferenceAugmentation.Apply([Crop(image)], 0.3, a)[0].Image.data<float>().ToArray(), ReferenceAugmentation.Apply([Crop(image)], 0.3, b)[0].Image.data<float>().ToArray());
        IReadOnlyList<ReferenceCrop> crops = [Crop(image)];
        Assert.Same(crops, ReferenceAugmentation.Apply(crops, 0, a));
        Assert.Equal(rand(4, generator: b).data<float>().ToArray(), rand(4, generator: a).data<float>().ToArray());
        Assert.Throws<ArgumentOutOfRangeException>(() => ReferenceAugmentation.Apply(crops, 0.95, a));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ReferenceTrainingOptions { ReferenceAugmentation = -0.1 }.Validate());
    }

    [Fact]
    public void Off_it_leaves_the_stage_key_and_the_losses_unchanged_and_on_it_changes_the_losses()
    {
        // Runs made before the setting existed keep their cache keys: at 0 the field is not serialised.
        Assert.DoesNotContain("reference_augmentation", System.Text.Json.JsonSerializer.Serialize(new ReferenceTrainingOptions(), Data.WorkbenchJson.Lines));
        Assert.Contains("\"reference_augmentation\":0.3", System.Text.Json.JsonSerializer.Serialize(new ReferenceTrainingOptions { ReferenceAugmentation = 0.3 }, Data.WorkbenchJson.Lines));
        world.AssertOffChangesNothingAndOnChangesTheLosses(new ReferenceTrainingOptions { ReferenceAugmentation = 0 }, new ReferenceTrainingOptions { ReferenceAugmentation = 0.5 });
    }
}
